"""Head warm-up: train a new embedding layer on the frozen backbone's pooled features before end-to-end training."""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import torch
from torch import Tensor, nn

from ..data import DMLDataset, ImageDataset
from .build import image_transform
from .config import TrainConfig
from .data import embed
from .loop import fit


class _Pooled(nn.Module):
    """``model.features``: images -> pooled backbone features (B, F)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.features(x)  # (B, F)


class _Head(nn.Module):
    """The model's embedding layer on pooled features: (B, F) -> (B, D) (and the features, for the CAA loss)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embedding = model.embedding
        self.normalize = bool(getattr(model, "normalize", False))

    def forward(self, x: Tensor, *, return_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        z = self.embedding(x)  # (B, D)
        z = torch.nn.functional.normalize(z, dim=1) if self.normalize else z  # (B, D)
        return (z, x) if return_features else z


def warm_up_head(
    model: nn.Module,
    loss_fn: nn.Module,
    train_set: Any,
    val_set: Any | None,
    *,
    config: TrainConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Train ``model.embedding`` (and ``loss_fn``'s parameters) on the frozen backbone's pooled features.

    The pooled features of the centre-cropped training (and validation) images are computed once; then
    :func:`~dmlbook.train.loop.fit` trains the embedding layer on them with the same loss for at most
    ``config.head_warmup_epochs`` epochs at ``config.head_warmup_lr`` (cosine schedule) and keeps the epoch with
    the best validation Recall@1. This is the frozen-feature head of the benchmark, on the backbone that is then
    fine-tuned: the new layers start from a useful solution instead of sending random gradients into the
    pretrained backbone. Returns ``{"epochs", "best_epoch", "val_recall@1", "seconds", "history"}``.
    """
    if not (hasattr(model, "features") and isinstance(getattr(model, "embedding", None), nn.Module)):
        raise ValueError(
            f"head_warmup_epochs needs a model with .features() and an .embedding layer; got "
            f"{type(model).__name__}"
        )
    started = time.perf_counter()
    model.to(device)
    pooled = _Pooled(model)

    def features_of(ds: Any) -> DMLDataset:
        view = copy.copy(ds)
        if isinstance(ds, ImageDataset):
            view.transform = image_transform(model, config, train=False, dataset=ds)
        feats, labels = embed(
            pooled, view, device=device, batch_size=config.eval_batch_size, num_workers=config.num_workers
        )  # (N, F), (N,)
        return DMLDataset(
            feats, labels.numpy(), class_ids=ds.class_ids, name=f"{ds.name}_pooled", split=ds.split
        )

    train_feats = features_of(train_set)
    val_feats = features_of(val_set) if val_set is not None and len(val_set) else None
    warm = dataclasses.replace(
        config,
        epochs=config.head_warmup_epochs,
        lr=config.head_warmup_lr,
        patience=0,
        batches_per_epoch=None,
        backbone_lr_mult=1.0,
        schedule="cosine",
        num_workers=0,
        resume=False,
    )
    fitted = fit(_Head(model), loss_fn, train_feats, val_set=val_feats, config=warm, device=device)
    return {
        "epochs": fitted.epochs,
        "best_epoch": fitted.best_epoch,
        "val_recall@1": fitted.best_val,
        "seconds": round(time.perf_counter() - started, 3),
        "history": fitted.history,
    }

"""The data side of a run: the configured splits, a seeded subset, batches on the device and whole-set embedding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import check_int
from ..data import DMLDataset, ImageDataset, load_dataset
from .config import TrainConfig


def load_splits(config: TrainConfig) -> tuple[Any, Any | None, Any]:
    """``(train, val or None, test)`` of the configured dataset (val classes are removed from train)."""
    kwargs = dict(
        root=config.data_root, val_fraction=config.val_fraction, seed=config.seed, **config.data_args
    )
    train_set = load_dataset(config.dataset, split="train", **kwargs)
    val_set = load_dataset(config.dataset, split="val", **kwargs) if config.val_fraction > 0 else None
    if val_set is not None and val_set.num_classes < 2:
        raise ValueError(
            f"val_fraction={config.val_fraction} holds out {val_set.num_classes} of the training "
            f"classes of {config.dataset!r}; validation needs at least 2: raise val_fraction or set it "
            f"to 0"
        )
    test_set = load_dataset(config.dataset, split="test", **kwargs)
    return train_set, val_set, test_set


def subsample(dataset: Any, size: int | None, seed: int = 0) -> Any:
    """A seeded random subset of ``size`` samples of a dataset (in their original order), or the dataset itself
    when ``size`` is None or not smaller than it."""
    if size is None or len(dataset) <= size:
        return dataset
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an int >= 2 or None; got {size!r}")
    keep = np.sort(np.random.default_rng(seed).choice(len(dataset), size=size, replace=False))
    return dataset.subset(keep)


def _in_memory(dataset: Any) -> bool:
    return (
        isinstance(dataset, DMLDataset)
        and not isinstance(dataset, ImageDataset)
        and dataset.data is not None
        and dataset.transform is None
    )


def _as_float(x: Tensor) -> Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def iterate_batches(
    dataset: Any,
    batches: Iterator[list[int]] | Sequence[list[int]],
    *,
    device: torch.device,
    num_workers: int = 0,
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, labels)`` on ``device`` for each list of indices. In-memory datasets are indexed directly (no
    per-sample Python); others go through a DataLoader with ``num_workers`` processes."""
    if _in_memory(dataset):
        labels = torch.as_tensor(dataset.labels)
        for idx in batches:
            index = torch.as_tensor(idx, dtype=torch.long)
            yield _as_float(dataset.data[index]).to(device), labels[index].to(device)
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def autocast(device: torch.device, enabled: bool) -> Any:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op context elsewhere."""
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def embed(
    model: nn.Module,
    dataset: Any,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
    num_workers: int = 0,
    amp: bool = False,
) -> tuple[Tensor, Tensor]:
    """Embeddings ``(N, D)`` (float32, CPU) and labels ``(N,)`` of a whole dataset, in order, in eval mode."""
    device = torch.device(device)
    check_int(batch_size, "batch_size", 1)
    was_training = model.training
    model.eval()
    order = np.arange(len(dataset))
    chunks = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    out, labels = [], []
    for x, y in iterate_batches(dataset, chunks, device=device, num_workers=num_workers):
        with autocast(device, amp):
            out.append(model(x).float().cpu())  # (b, D)
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(out), torch.cat(labels)

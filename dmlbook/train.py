"""Train an embedding and measure it: one loop for one process or ``torchrun``, checkpoints, ``metrics.json``.

Command line::

    python -m dmlbook train --dataset cars196_features --data-root ../shared/data/cars196_half --loss osm_caa
    torchrun --nproc_per_node 2 -m dmlbook train --dataset fashion_mnist --loss triplet

Python::

    from dmlbook.train import TrainConfig, train
    result = train(TrainConfig(dataset="digits", loss="contrastive", epochs=5))
    result.metrics["recall@1"]

What one run does:

1. loads the dataset's standard class-disjoint ``train`` / ``test`` split and carves ``val_fraction`` of the
   training classes into a validation split (early stopping looks only at those classes, never at test);
2. builds the dataset's default model (:data:`DATASET_DEFAULTS`, overridable) and the loss by name;
3. trains on P x K batches (:class:`~dmlbook.data.PKSampler`; an *epoch* is ``batches_per_epoch`` batches,
   by default as many as cover the training set once), with the chosen optimiser and schedule, automatic mixed
   precision on CUDA, a progress bar, and a checkpoint after every epoch (``--resume`` continues from it and
   reaches the same result as an uninterrupted run);
4. after each epoch measures Recall@1 on the validation classes, keeps the best weights and stops after
   ``patience`` epochs without improvement;
   For image backbones (``--model mobilenet_v2``) an optional head warm-up comes first (``head_warmup_epochs``:
   the embedding layer, and the CAA classifier of ``osm_caa``, trained on the frozen backbone's pooled features of
   centre crops, chosen on the validation classes), the images can be decoded once into memory
   (``cache_images``), and ``osm_caa`` reads its class-aware attention from a classifier on the backbone's pooled
   features (:class:`PooledFeatureCAA`), as in the paper;
5. evaluates the best weights on the test classes (:func:`~dmlbook.evaluation.evaluate`) and writes
   ``OUT/metrics.json`` (flat keys ``recall@1 recall@2 recall@4 recall@8 map@r r_precision nmi val_recall@1
   epochs seconds`` and the full ``config``) and ``OUT/history.json`` (one record per epoch).

Determinism: batches depend only on ``(seed, epoch)`` and the torch generator is re-seeded from
``(seed, epoch)`` at the start of every epoch, so the same seed gives the same metrics on CPU, and a resumed
run continues exactly where the interrupted one stopped.
"""
from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from ._checks import check_choice
from .data import DMLDataset, ImageDataset, PKSampler, dataset_info, list_datasets, load_dataset
from .data.image_cache import cache_images as _cache_images
from .evaluation import evaluate
from .losses import LOSSES, MetricLoss, build_loss
from .losses.osm_caa import OSMCAALoss
from .models import available_models, build_model

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
DEVICES = ("auto", "cpu", "cuda")
METRIC_KEYS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")

#: Loss hyper-parameters chosen on the *validation* classes of the Cars196 features (see
#: ``benchmarks/cars196_features.py``): with a linear head on frozen features the paper's λ = 0.5 pulls positives
#: together so hard that the head overfits the training classes (test Recall@1 below the raw features), and the
#: CAA classifier's cross-entropy does the same; λ = 0.9 and a classifier that only *reads* the embeddings fix both.
_FROZEN_FEATURE_LOSS_ARGS: dict[str, dict[str, Any]] = {
    "osm": {"lam": 0.9},
    "osm_caa": {"lam": 0.9, "detach_classifier": True},
}

#: The entries of a dataset's defaults that belong to its default model (dropped when another model is chosen).
_MODEL_RECIPE = ("model_args", "head_warmup_epochs", "head_warmup_lr")

#: Per-dataset defaults that give a good run with ``--dataset X --loss Y`` alone. Anything not listed comes
#: from :class:`TrainConfig`; ``embedding_dim``, ``batch_p`` and ``batch_k`` come from the dataset's
#: :class:`~dmlbook.data.DatasetInfo` unless given here.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {"model": "mlp", "model_args": {"hidden_dims": (64,)}, "epochs": 20, "lr": 1e-2, "val_fraction": 0.0},
    "digits": {"model": "small_cnn", "model_args": {"width": 16, "image_size": 8}, "epochs": 15, "lr": 3e-3,
                   "val_fraction": 0.0},
    "fashion_mnist": {"model": "small_cnn", "epochs": 3, "lr": 1e-3, "val_fraction": 0.0, "batches_per_epoch": 150},
    "cars196_features": {"model": "linear", "embedding_dim": 512, "epochs": 60, "lr": 1e-4, "weight_decay": 1e-4,
                             "patience": 10, "val_fraction": 0.2, "loss_args": _FROZEN_FEATURE_LOSS_ARGS},
    "features": {"model": "linear", "embedding_dim": 512, "epochs": 60, "lr": 1e-4, "weight_decay": 1e-4, "patience": 10,
                     "val_fraction": 0.2, "loss_args": _FROZEN_FEATURE_LOSS_ARGS},
    # Cars196 images end to end (benchmarks/end_to_end.py, chosen on the validation classes on 2 CPU cores): the
    # 128-px images of cars196_half upscaled to 224 px (raw pooled features: Recall@1 40 at 224, 28 at 112), the
    # stem and rows 1-4 frozen, random crops of at least half the image, a 20-epoch head warm-up at lr 1e-4 (at 1e-3
    # the head overfits the training classes), the backbone at 0.3x the head's lr (1x first drops validation
    # Recall@1 by 3 points), and the frozen heads' OSM λ = 0.9 (with λ = 0.5 validation Recall@1 fell to 48.6
    # after 100 steps, against 60.5); 512-d embeddings as the frozen heads; the decoded images are cached in memory,
    # so no loader processes compete with the two cores
    "cars196": {"model": "mobilenet_v2", "pretrained": "default", "image_size": 224, "backbone_lr_mult": 0.3,
                "model_args": {"frozen_stages": 5}, "crop_scale_min": 0.5, "head_warmup_epochs": 20,
                "head_warmup_lr": 1e-4, "embedding_dim": 512, "batch_p": 16, "batch_k": 4, "epochs": 30, "lr": 1e-4,
                "patience": 5, "val_fraction": 0.2, "num_workers": 0, "cache_images": True,
                "loss_args": _FROZEN_FEATURE_LOSS_ARGS},
    "cub200": {"model": "mobilenet_v2", "pretrained": "default", "backbone_lr_mult": 0.1, "epochs": 30, "lr": 1e-4, "patience": 5, "val_fraction": 0.2, "num_workers": 2},
    "sop": {"model": "mobilenet_v2", "pretrained": "default", "backbone_lr_mult": 0.1, "epochs": 30, "lr": 1e-4, "patience": 5, "val_fraction": 0.1, "num_workers": 2},
    "folder": {"model": "mobilenet_v2", "pretrained": "default", "backbone_lr_mult": 0.1, "epochs": 30, "lr": 1e-4, "patience": 5, "val_fraction": 0.2, "num_workers": 2},
    # UC Merced (16-class subset) frozen MobileNetV2 features: 8 training classes, 2 of them held out for validation
    "ucmerced_features": {"model": "linear", "embedding_dim": 128, "epochs": 60, "lr": 1e-4, "weight_decay": 1e-4,
                          "patience": 10, "val_fraction": 0.25, "batch_p": 6, "loss_args": _FROZEN_FEATURE_LOSS_ARGS},
}


@dataclass
class TrainConfig:
    """Everything one run depends on (saved in ``metrics.json``). ``None`` means the dataset's default.

    Attributes:
        dataset: a registered dataset name (:func:`~dmlbook.data.list_datasets`).
        data_root: its folder (default ``$DMLBOOK_DATA/<name>``).
        data_args: extra loader arguments (e.g. ``{"key": ...}`` for features, ``{"kind": "patterns"}``).
        loss: a loss name (:data:`~dmlbook.losses.LOSSES`); ``loss_args``: its hyper-parameters.
        model: a model name (:func:`~dmlbook.models.available_models`); ``model_args``: its arguments.
        embedding_dim: output dimension.
        epochs: the most epochs to train; ``patience``: stop after this many epochs without a better
            validation Recall@1 (0 disables early stopping).
        batch_p, batch_k: P classes x K samples per batch (the global batch under torchrun).
        batches_per_epoch: batches in one epoch (default: enough to cover the training set once).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9); ``lr``, ``weight_decay``; ``loss_lr_mult``:
            learning-rate factor for the loss's own parameters (e.g. the CAA classifier).
        schedule: ``none``, ``cosine`` (per epoch, to 0 at ``epochs``) or ``step`` (x0.1 at 50 % and 75 %).
        val_fraction: share of the training classes held out for validation (0: no validation).
        seed: seeds data order, initialisation and the validation split.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; ``amp``: mixed precision (default: on
            CUDA only).
        out: output folder (``None``: nothing is written); ``resume``: continue from ``out/checkpoint.pt``.
        num_workers: data-loader processes for image datasets; ``eval_batch_size``: batch size when embedding.
        progress: show tqdm progress bars.
        pretrained: ImageNet weights for image backbones: a file, or ``"default"`` (the model's own default
            location, e.g. ``$DMLBOOK_DATA/weights/`` for ``mobilenet_v2``), or ``"none"`` (random initialisation).
        image_size: training/evaluation crop size for image datasets (default: the dataset's, 224).
        backbone_lr_mult: learning-rate factor for every model parameter outside its final ``embedding`` layer
            (end-to-end fine-tuning usually wants the pretrained backbone to move slower than the new head).
        channels_last: run image models in channels-last memory format (about 2x faster on CPU for MobileNetV2).
        cache_images: decode every image once into memory as uint8 (:func:`~dmlbook.data.image_cache.cache_images`,
            shorter side at most ``round(image_size * 8 / 7)``) instead of reading the JPEG files every epoch
            (default: the dataset's, on for Cars196; the memory is about 3 bytes per stored pixel).
        crop_scale_min: the smallest area fraction of the random resized crop of the training augmentation
            (default: the dataset's, else 0.08).
        head_warmup_epochs: before end-to-end training, train the embedding layer (and the loss's own classifier)
            on the frozen backbone's pooled features of centre-cropped training images for at most this many
            epochs, keeping the epoch with the best validation Recall@1 (0: no warm-up; image backbones only;
            default: the dataset's, else 0).
        head_warmup_lr: learning rate of that warm-up (default: the dataset's, else 1e-3).
        caa_on_features: for ``osm_caa`` on an image backbone, compute the class-aware attention from a classifier
            on the backbone's pooled features (:class:`PooledFeatureCAA`, the paper's layout) instead of one on the
            embeddings (default: on whenever the model has pooled features).
    """

    dataset: str = "synthetic"
    loss: str = "contrastive"
    data_root: str | None = None
    data_args: dict[str, Any] = field(default_factory=dict)
    loss_args: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int | None = None
    epochs: int | None = None
    patience: int | None = None
    batch_p: int | None = None
    batch_k: int | None = None
    batches_per_epoch: int | None = None
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float | None = None
    loss_lr_mult: float = 1.0
    schedule: str = "cosine"
    val_fraction: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    out: str | None = None
    resume: bool = False
    num_workers: int | None = None
    eval_batch_size: int = 512
    progress: bool = True
    pretrained: str | None = None
    image_size: int | None = None
    backbone_lr_mult: float | None = None
    channels_last: bool = True
    cache_images: bool | None = None
    crop_scale_min: float | None = None
    head_warmup_epochs: int | None = None
    head_warmup_lr: float | None = None
    caa_on_features: bool | None = None

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` replaced by the dataset's default; validates names and numbers."""
        check_choice(self.dataset, list_datasets(), "dataset")
        check_choice(self.loss, LOSSES, "loss")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.schedule, SCHEDULES, "schedule")
        check_choice(self.device, DEVICES, "device")
        info = dataset_info(self.dataset)
        dataset_defaults = DATASET_DEFAULTS.get(info.name, {})
        if self.model not in (None, dataset_defaults.get("model")):  # the recipe for the dataset's model stays with it
            dataset_defaults = {k: v for k, v in dataset_defaults.items() if k not in _MODEL_RECIPE}
        defaults: dict[str, Any] = {"embedding_dim": info.embedding_dim, "batch_p": info.batch_p, "batch_k": info.batch_k,
                    "epochs": 10, "patience": 0, "lr": 1e-3, "backbone_lr_mult": 1.0, "weight_decay": 0.0, "val_fraction": 0.2,
                    "num_workers": 0, "cache_images": False, "crop_scale_min": 0.08, "head_warmup_epochs": 0,
                    "head_warmup_lr": 1e-3, **dataset_defaults}
        out = dataclasses.replace(self, dataset=info.name)
        for name, value in defaults.items():
            if name == "model_args":
                out.model_args = {**value, **self.model_args}
            elif name == "loss_args":
                out.loss_args = {**value.get(out.loss, {}), **self.loss_args}
            elif getattr(out, name) is None:
                setattr(out, name, value)
        if out.model is None:
            out.model = "mlp"
        check_choice(out.model, available_models(), "model")
        for name in ("embedding_dim", "epochs", "batch_p", "batch_k", "eval_batch_size"):
            _check_int(getattr(out, name), name, 1)
        for name in ("patience", "num_workers", "seed"):
            _check_int(getattr(out, name), name, 0)
        if out.batches_per_epoch is not None:
            _check_int(out.batches_per_epoch, "batches_per_epoch", 1)
        if out.image_size is not None:
            _check_int(out.image_size, "image_size", 32)
        _check_int(out.head_warmup_epochs, "head_warmup_epochs", 0)
        if not 0 < out.crop_scale_min <= 1:
            raise ValueError(f"crop_scale_min must be in (0, 1]; got {out.crop_scale_min!r}")
        for name in ("lr", "loss_lr_mult", "backbone_lr_mult", "head_warmup_lr"):
            _check_float(getattr(out, name), name, positive=True)
        _check_float(out.weight_decay, "weight_decay", positive=False)
        _check_float(out.val_fraction, "val_fraction", positive=False)
        if not out.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1); got {out.val_fraction}")
        _check_loss_args(out.loss, out.loss_args)
        return out


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_float(value: Any, name: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}; got {value!r}")
    return float(value)


def _check_loss_args(loss: str, args: dict[str, Any]) -> None:
    accepted = [p for p in inspect.signature(LOSSES[loss]).parameters if p != "self"]
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for loss {loss!r}; it accepts: "
                         f"{', '.join(accepted)}")


# --- building blocks ----------------------------------------------------------------------------------------
def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; asking for ``cuda`` without a GPU is an error."""
    check_choice(device, DEVICES, "device")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch.cuda.is_available() is False; use --device cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


class PooledFeatureCAA(nn.Module):
    """OSM + CAA whose class-aware attention reads a softmax classifier on the backbone's pooled features.

    Wang, Hua, Kodirov, Hu & Robertson (AAAI 2019, Fig. 2) put the CAA classifier on the CNN's features beside the
    embedding layer and train it with cross-entropy together with the metric loss. With pooled features
    ``f`` (B, F), embeddings ``e`` (B, D) and labels ``y``:

    ``logits = W f + b``, ``a_i = p(y_i | f_i)`` (or the Gaussian form), and
    ``L = L_OSM+CAA(e, y; a) + CE(logits, y)``

    (:class:`~dmlbook.losses.osm_caa.OSMCAALoss` with ``logits=``). The cross-entropy also fine-tunes the backbone
    unless ``detach_features`` (then it only trains ``W, b``).

    Args:
        metric: the OSM + CAA loss without its own classifier.
        feature_dim: F, the pooled-feature size (1280 for MobileNetV2).
        num_classes: the number of training classes.
        detach_features: train the classifier on detached features.

    ``forward(embeddings (B, D), labels (B,), features (B, F)) -> scalar``. The fit loop passes ``features`` for
    every loss whose ``needs_features`` is True.
    """

    needs_features = True

    def __init__(self, metric: OSMCAALoss, feature_dim: int, num_classes: int, *, detach_features: bool = False
                 ) -> None:
        super().__init__()
        if not isinstance(metric, OSMCAALoss) or metric.classifier is not None:
            raise TypeError("metric must be an OSMCAALoss without its own classifier (no num_classes=)")
        _check_int(feature_dim, "feature_dim", 1)
        _check_int(num_classes, "num_classes", 2)
        self.metric = metric
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.detach_features = bool(detach_features)

    def logits(self, features: Tensor) -> Tensor:
        """Class scores (B, C) of pooled features (B, F)."""
        return self.classifier(features.detach() if self.detach_features else features)  # (B, C)

    def forward(self, embeddings: Tensor, labels: Tensor, features: Tensor) -> Tensor:
        if features.dim() != 2 or features.shape[0] != embeddings.shape[0] or \
                features.shape[1] != self.classifier.in_features:
            raise ValueError(f"features must have shape ({embeddings.shape[0]}, {self.classifier.in_features}); "
                             f"got {tuple(features.shape)}")
        logits = self.logits(features)  # (B, C)
        return self.metric(embeddings, labels, logits=logits) + torch.nn.functional.cross_entropy(logits, labels)


def _pooled_feature_dim(model: nn.Module) -> int | None:
    """The pooled-feature size of a model with ``forward(x, return_features=True)`` (None otherwise)."""
    dim = getattr(model, "feature_dim", None)
    has = "return_features" in inspect.signature(model.forward).parameters and hasattr(model, "features")
    return int(dim) if has and isinstance(dim, int) else None


def build_loss_for(config: TrainConfig, num_classes: int, model: nn.Module | None = None) -> nn.Module:
    """The configured loss. ``osm_caa`` gets a CAA classifier over the training classes by default: on the
    backbone's pooled features (:class:`PooledFeatureCAA`) when ``model`` has them and ``caa_on_features`` is
    not False, else on the embeddings (the loss's own classifier)."""
    args = dict(config.loss_args)
    if config.loss == "osm_caa" and args.get("attention", "prob") != "none" and "num_classes" not in args:
        feature_dim = _pooled_feature_dim(model) if model is not None else None
        if config.caa_on_features is True and feature_dim is None:
            raise ValueError(f"caa_on_features=True needs a model with pooled features; {config.model!r} has none")
        if feature_dim is not None and config.caa_on_features is not False:
            detach = bool(args.pop("detach_classifier", False))
            return PooledFeatureCAA(build_loss(config.loss, **args), feature_dim, num_classes, detach_features=detach)
        args.update(num_classes=num_classes, embedding_dim=config.embedding_dim)
    elif getattr(LOSSES.get(config.loss), "needs_classes", False) and "num_classes" not in args:
        args.update(num_classes=num_classes, embedding_dim=config.embedding_dim)  # centre, demal: own classifier
    return build_loss(config.loss, **args)


def build_model_for(config: TrainConfig, sample: Tensor) -> nn.Module:
    """The configured model for inputs shaped like ``sample`` (one x of the dataset)."""
    if sample.dim() == 1:
        if config.pretrained not in (None, "none"):
            raise ValueError(f"pretrained= is for image backbones; {config.model!r} takes feature vectors")
        return build_model(config.model, in_dim=sample.shape[0], embedding_dim=config.embedding_dim,
                           **config.model_args)
    args = dict(config.model_args)
    if config.pretrained not in (None, "none"):
        args["pretrained"] = True if config.pretrained == "default" else config.pretrained
    return build_model(config.model, in_channels=sample.shape[0], embedding_dim=config.embedding_dim, **args)


def set_image_transforms(model: nn.Module, datasets: Sequence[Any], config: TrainConfig) -> None:
    """Give image datasets the augmentation (train) / centre crop (others) at ``image_size``, normalised the way
    the model's weights expect (``[-1, 1]`` for TensorFlow-format weights, ImageNet mean/std otherwise)."""
    for ds in datasets:
        if isinstance(ds, ImageDataset):
            ds.transform = image_transform(model, config, train=ds.split == "train", dataset=ds)


def _image_size(config: TrainConfig, dataset: Any) -> int:
    info = getattr(dataset, "info", None)
    return config.image_size or (info.image_size if info is not None else None) or 224


def image_transform(model: nn.Module, config: TrainConfig, *, train: bool, dataset: Any = None) -> Any:
    """The training augmentation (``train``) or the evaluation centre crop at the configured image size, with the
    normalisation that ``model``'s weights expect."""
    from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, TF_MEAN, TF_STD, eval_transform, train_transform

    tf = getattr(model, "weights_format", None) == "tf"
    mean, std = (TF_MEAN, TF_STD) if tf else (IMAGENET_MEAN, IMAGENET_STD)
    size = _image_size(config, dataset)
    if train:
        return train_transform(size, mean=mean, std=std, scale=(config.crop_scale_min, 1.0))
    return eval_transform(size, mean=mean, std=std)


def _in_memory(dataset: Any) -> bool:
    return isinstance(dataset, DMLDataset) and not isinstance(dataset, ImageDataset) and \
        dataset.data is not None and dataset.transform is None


def _as_float(x: Tensor) -> Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def iterate_batches(dataset: Any, batches: Iterator[list[int]] | Sequence[list[int]], *, device: torch.device,
                    num_workers: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, labels)`` on ``device`` for each list of indices. In-memory datasets are indexed directly (no
    per-sample Python); others go through a DataLoader with ``num_workers`` processes."""
    if _in_memory(dataset):
        labels = torch.as_tensor(dataset.labels)
        for idx in batches:
            index = torch.as_tensor(idx, dtype=torch.long)
            yield _as_float(dataset.data[index]).to(device), labels[index].to(device)
        return
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                         persistent_workers=False, pin_memory=device.type == "cuda")
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


@torch.no_grad()
def embed(model: nn.Module, dataset: Any, *, device: torch.device | str = "cpu", batch_size: int = 512,
          num_workers: int = 0, amp: bool = False) -> tuple[Tensor, Tensor]:
    """Embeddings ``(N, D)`` (float32, CPU) and labels ``(N,)`` of a whole dataset, in order, in eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    order = np.arange(len(dataset))
    chunks = [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    out, labels = [], []
    for x, y in iterate_batches(dataset, chunks, device=device, num_workers=num_workers):
        with _autocast(device, amp):
            out.append(model(x).float().cpu())  # (b, D)
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(out), torch.cat(labels)


def _autocast(device: torch.device, enabled: bool) -> Any:
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled and device.type == "cuda")


def make_optimizer(model: nn.Module, loss_fn: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("embedding")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("embedding")]
    if config.backbone_lr_mult == 1.0 or not head:
        groups = [{"params": head + body, "lr": config.lr}]
    else:  # a new head on a pretrained backbone: the backbone moves slower
        groups = [{"params": head, "lr": config.lr}, {"params": body, "lr": config.lr * config.backbone_lr_mult}]
    loss_params = [p for p in loss_fn.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "lr": config.lr * config.loss_lr_mult})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        milestones = sorted({max(1, config.epochs // 2), max(1, 3 * config.epochs // 4)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


# --- the loop -----------------------------------------------------------------------------------------------
@dataclass
class StepInfo:
    """Given to ``on_step`` after every optimiser step: the (global) batch's detached embeddings and labels."""

    epoch: int
    step: int
    loss: float
    embeddings: Tensor
    labels: Tensor
    model: nn.Module
    loss_fn: MetricLoss


@dataclass
class FitResult:
    """What :func:`fit` returns: the per-epoch history and the best validation score and epoch."""

    history: list[dict[str, Any]]
    best_val: float | None
    best_epoch: int
    epochs: int
    seconds: float
    stopped_early: bool


class _Stop(Exception):
    pass


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def fit(
    model: nn.Module,
    loss_fn: MetricLoss,
    train_set: Any,
    *,
    val_set: Any | None = None,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    dist_info: distributed.DistInfo | None = None,
) -> FitResult:
    """Train ``model`` (and ``loss_fn``'s own parameters) in place; on return it holds the best weights.

    ``config`` must be :meth:`TrainConfig.resolved`. ``on_step`` / ``on_epoch`` are called after every step /
    epoch (an epoch record is ``{"epoch", "loss", "val_recall@1", "lr", "seconds"}``); under torchrun they run
    on every process. ``checkpoint``: file written after each epoch; with ``resume`` training continues from it.
    """
    device = torch.device(device)
    info = dist_info or distributed.DistInfo()
    amp = device.type == "cuda" if config.amp is None else bool(config.amp) and device.type == "cuda"
    model.to(device)
    loss_fn.to(device)
    net = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, loss_fn, config)
    schedule = make_schedule(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and not torch.cuda.is_bf16_supported()) \
        if device.type == "cuda" else None
    sampler = PKSampler(train_set.labels, p=config.batch_p, k=config.batch_k,
                        batches_per_epoch=config.batches_per_epoch, seed=config.seed,
                        num_replicas=info.world_size, rank=info.rank)
    state = {"epoch": 0, "history": [], "best_val": None, "best_epoch": 0, "bad_epochs": 0, "seconds": 0.0,
             "best_state": None}
    if resume and checkpoint is not None and Path(checkpoint).exists():
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        loss_fn.load_state_dict(saved["loss_fn"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        state = saved["state"]
    elif resume:
        raise FileNotFoundError(f"resume=True but there is no checkpoint at {checkpoint}; run without --resume")
    stopped_early = state.get("stopped_early", False)
    progress = _progress_factory(config.progress and info.is_main)
    needs_features = bool(getattr(loss_fn, "needs_features", False))
    while state["epoch"] < config.epochs and not stopped_early:
        epoch = state["epoch"]
        started = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + epoch)
        sampler.set_epoch(epoch)
        net.train()
        loss_fn.train()
        losses = []
        bar = progress(total=len(sampler), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
        for step, (x, y) in enumerate(iterate_batches(train_set, sampler, device=device,
                                                      num_workers=config.num_workers)):
            if needs_features:  # a loss with a classifier on the pooled features (PooledFeatureCAA)
                with _autocast(device, amp):
                    local, pooled = net(x, return_features=True)  # (B_local, D), (B_local, F)
                both, labels = distributed.gather_embeddings(
                    torch.cat([local.float(), pooled.float()], dim=1), y)  # (B, D + F), (B,)
                embeddings, features = both[:, :local.shape[1]], both[:, local.shape[1]:]  # (B, D), (B, F)
                loss = loss_fn(embeddings, labels, features=features)
            else:
                with _autocast(device, amp):
                    local = net(x).float()  # (B_local, D)
                embeddings, labels = distributed.gather_embeddings(local, y)  # (B, D), (B,)
                loss = loss_fn(embeddings, labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {step}; lower "
                                         f"the learning rate (lr={config.lr})")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if on_step is not None:
                on_step(StepInfo(epoch, epoch * len(sampler) + step, losses[-1], embeddings.detach(),
                                 labels.detach(), model, loss_fn))
        bar.close()
        lr = optimizer.param_groups[0]["lr"]
        schedule.step()
        val = None
        if val_set is not None and len(val_set) and info.is_main:
            emb, lab = embed(model, val_set, device=device, batch_size=config.eval_batch_size,
                             num_workers=config.num_workers, amp=amp)
            val = evaluate(emb, lab, ks=(1,), nmi=False)["recall@1"]
        val = distributed.broadcast_object(val, info)
        state["seconds"] += time.perf_counter() - started
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                  "val_recall@1": val, "lr": lr, "seconds": round(state["seconds"], 3)}
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if val is None or state["best_val"] is None or val > state["best_val"]:
            state["best_val"], state["best_epoch"], state["bad_epochs"] = val, epoch + 1, 0
            state["best_state"] = copy.deepcopy({"model": model.state_dict(), "loss_fn": loss_fn.state_dict()})
        else:
            state["bad_epochs"] += 1
        stopped_early = bool(config.patience and val is not None and state["bad_epochs"] >= config.patience)
        state["stopped_early"] = stopped_early
        if checkpoint is not None and info.is_main:
            _save_checkpoint(checkpoint, model, loss_fn, optimizer, schedule, state)
        if on_epoch is not None:
            on_epoch(dict(record))
        if info.is_main and config.progress:
            print(f"epoch {epoch + 1}: loss {record['loss']:.4f}"
                  + (f", val recall@1 {val:.4f}" if val is not None else ""), file=sys.stderr)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"]["model"])
        loss_fn.load_state_dict(state["best_state"]["loss_fn"])
    return FitResult(state["history"], state["best_val"], state["best_epoch"], state["epoch"], state["seconds"],
                     stopped_early)


def _save_checkpoint(path: str | os.PathLike[str], model: nn.Module, loss_fn: nn.Module,
                     optimizer: torch.optim.Optimizer, schedule: Any, state: dict[str, Any]) -> None:
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "loss_fn": loss_fn.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "state": state}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint


def _progress_factory(enabled: bool) -> Callable[..., Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the train extra
        enabled = False
    if enabled:
        return lambda **kw: tqdm(**kw)
    return lambda **kw: _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...


# --- head warm-up on frozen pooled features -----------------------------------------------------------------
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


def warm_up_head(model: nn.Module, loss_fn: nn.Module, train_set: Any, val_set: Any | None, *, config: TrainConfig,
                 device: torch.device) -> dict[str, Any]:
    """Train ``model.embedding`` (and ``loss_fn``'s parameters) on the frozen backbone's pooled features.

    The pooled features of the centre-cropped training (and validation) images are computed once; then
    :func:`fit` trains the embedding layer on them with the same loss for at most ``config.head_warmup_epochs``
    epochs at ``config.head_warmup_lr`` (cosine schedule) and keeps the epoch with the best validation
    Recall@1. This is the frozen-feature head of the benchmark, on the backbone that is then fine-tuned: the new
    layers start from a useful solution instead of sending random gradients into the pretrained backbone.
    Returns ``{"epochs", "best_epoch", "val_recall@1", "seconds", "history"}``.
    """
    if not (hasattr(model, "features") and isinstance(getattr(model, "embedding", None), nn.Module)):
        raise ValueError(f"head_warmup_epochs needs a model with .features() and an .embedding layer; got "
                         f"{type(model).__name__}")
    started = time.perf_counter()
    model.to(device)
    pooled = _Pooled(model)

    def features_of(ds: Any) -> DMLDataset:
        view = copy.copy(ds)
        if isinstance(ds, ImageDataset):
            view.transform = image_transform(model, config, train=False, dataset=ds)
        feats, labels = embed(pooled, view, device=device, batch_size=config.eval_batch_size,
                              num_workers=config.num_workers)  # (N, F), (N,)
        return DMLDataset(feats, labels.numpy(), class_ids=ds.class_ids, name=f"{ds.name}_pooled", split=ds.split)

    train_feats = features_of(train_set)
    val_feats = features_of(val_set) if val_set is not None and len(val_set) else None
    warm = dataclasses.replace(config, epochs=config.head_warmup_epochs, lr=config.head_warmup_lr, patience=0,
                               batches_per_epoch=None, backbone_lr_mult=1.0, schedule="cosine", num_workers=0,
                               resume=False)
    fitted = fit(_Head(model), loss_fn, train_feats, val_set=val_feats, config=warm, device=device)
    return {"epochs": fitted.epochs, "best_epoch": fitted.best_epoch, "val_recall@1": fitted.best_val,
            "seconds": round(time.perf_counter() - started, 3), "history": fitted.history}


# --- one whole run ------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train` returns: the test ``metrics`` (as in ``metrics.json``), the history, the trained
    model and loss, and the resolved config."""

    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    model: nn.Module
    loss_fn: MetricLoss
    config: TrainConfig


def load_splits(config: TrainConfig) -> tuple[Any, Any | None, Any]:
    """``(train, val or None, test)`` of the configured dataset (val classes are removed from train)."""
    kwargs = dict(root=config.data_root, val_fraction=config.val_fraction, seed=config.seed, **config.data_args)
    train_set = load_dataset(config.dataset, split="train", **kwargs)
    val_set = load_dataset(config.dataset, split="val", **kwargs) if config.val_fraction > 0 else None
    if val_set is not None and val_set.num_classes < 2:
        raise ValueError(f"val_fraction={config.val_fraction} holds out {val_set.num_classes} of the training "
                         f"classes of {config.dataset!r}; validation needs at least 2: raise val_fraction or set it to 0")
    test_set = load_dataset(config.dataset, split="test", **kwargs)
    return train_set, val_set, test_set


def train(config: TrainConfig | None = None, *, on_step: Callable[[StepInfo], None] | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None, **overrides: Any) -> TrainResult:
    """Run one training as described in the module docstring; ``overrides`` replace fields of ``config``."""
    config = dataclasses.replace(config or TrainConfig(), **overrides).resolved()
    device = resolve_device(config.device)
    info = distributed.setup(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if info.enabled and config.batch_p % info.world_size:
        raise ValueError(f"batch_p ({config.batch_p}) must be divisible by the number of processes "
                         f"({info.world_size})")
    out = Path(config.out) if config.out else None
    if out is not None and info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    train_set, val_set, test_set = load_splits(config)
    usable = int((train_set.class_counts() >= 2).sum())
    if config.batch_p > usable:  # fewer training classes than P: use them all (whole classes per process)
        config.batch_p = max(info.world_size, usable - usable % info.world_size)
    torch.manual_seed(config.seed)
    images = isinstance(train_set, ImageDataset)
    model = build_model_for(config, train_set[0][0])
    set_image_transforms(model, [d for d in (train_set, val_set, test_set) if d is not None], config)
    cache_seconds = 0.0
    if images and config.cache_images:
        started = time.perf_counter()
        shorter = round(_image_size(config, train_set) * 8 / 7)  # the evaluation transform's resize
        train_set, val_set, test_set = (
            _cache_images(d, max_shorter_side=shorter, progress=config.progress and info.is_main)
            if isinstance(d, ImageDataset) else d for d in (train_set, val_set, test_set))
        cache_seconds = time.perf_counter() - started
    if config.channels_last and images:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss_for(config, train_set.num_classes, model)
    checkpoint = out / "checkpoint.pt" if out is not None else None
    warmup: dict[str, Any] | None = None
    if config.head_warmup_epochs and not (config.resume and checkpoint is not None and checkpoint.exists()):
        if not images:
            raise ValueError("head_warmup_epochs is for image backbones (a feature model is its own head)")
        torch.manual_seed(config.seed)
        warmup = warm_up_head(model, loss_fn, train_set, val_set if info.is_main else None, config=config,
                              device=device)
    fitted = fit(model, loss_fn, train_set, val_set=val_set, config=config, device=device, checkpoint=checkpoint,
                 resume=config.resume, on_step=on_step, on_epoch=on_epoch, dist_info=info)
    metrics: dict[str, Any] = {}
    if info.is_main:
        emb, labels = embed(model, test_set, device=device, batch_size=config.eval_batch_size,
                            num_workers=config.num_workers)
        metrics = {k: v for k, v in evaluate(emb, labels, seed=config.seed).items() if k in METRIC_KEYS}
        metrics.update({"val_recall@1": fitted.best_val, "epochs": fitted.epochs, "best_epoch": fitted.best_epoch,
                        "stopped_early": fitted.stopped_early,
                        "seconds": round(fitted.seconds + (warmup["seconds"] if warmup else 0.0), 3),
                        "warmup_seconds": warmup["seconds"] if warmup else 0.0,
                        "warmup_val_recall@1": warmup["val_recall@1"] if warmup else None,
                        "cache_seconds": round(cache_seconds, 3),
                        "train_samples": len(train_set), "test_samples": len(test_set),
                        "world_size": info.world_size, "device": str(device),
                        "config": _jsonable(dataclasses.asdict(config))})
        if out is not None:
            (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            (out / "history.json").write_text(json.dumps(fitted.history, indent=2) + "\n")
            if warmup is not None:
                (out / "warmup_history.json").write_text(json.dumps(warmup["history"], indent=2) + "\n")
    distributed.barrier(info)
    return TrainResult(metrics, fitted.history, model, loss_fn, config)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# --- command line -------------------------------------------------------------------------------------------
def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. margin=0.2); got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word such as prob or batch_hard
    return key.strip(), value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmlbook train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $DMLBOOK_DATA/<dataset>)")
    p.add_argument("--loss", required=True, help=f"one of: {', '.join(LOSSES)}")
    p.add_argument("--epochs", type=int, default=None, help="most epochs (default: the dataset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--out", default="build/train", help="output folder for metrics.json, history, checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--model", default=None, help=f"one of: {', '.join(available_models())}")
    p.add_argument("--embedding-dim", type=int, default=None)
    p.add_argument("--batch-p", type=int, default=None, help="classes per batch")
    p.add_argument("--batch-k", type=int, default=None, help="samples per class in a batch")
    p.add_argument("--batches-per-epoch", type=int, default=None)
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--loss-lr-mult", type=float, default=1.0, help="lr factor for the loss's own parameters")
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--val-fraction", type=float, default=None, help="share of train classes used for validation")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (CUDA)")
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--loss-arg", action="append", type=_key_value, default=[], metavar="NAME=VALUE",
                   help="a loss hyper-parameter, e.g. --loss-arg margin=0.2 (repeatable)")
    p.add_argument("--model-arg", action="append", type=_key_value, default=[], metavar="NAME=VALUE",
                   help="a model argument, e.g. --model-arg hidden_dims=(512,)")
    p.add_argument("--data-arg", action="append", type=_key_value, default=[], metavar="NAME=VALUE",
                   help="a dataset-loader argument, e.g. --data-arg key=mobilenet_v2_1.0_224_quant")
    p.add_argument("--pretrained", default=None, help="ImageNet weights file for image backbones, or 'default'")
    p.add_argument("--image-size", type=int, default=None, help="crop size for image datasets")
    p.add_argument("--backbone-lr-mult", type=float, default=None, help="lr factor for the pretrained backbone")
    p.add_argument("--cache-images", action=argparse.BooleanOptionalAction, default=None,
                   help="decode every image once into memory (default: the dataset's)")
    p.add_argument("--crop-scale-min", type=float, default=None,
                   help="smallest area share of the random crop (default: the dataset's, else 0.08)")
    p.add_argument("--head-warmup-epochs", type=int, default=None,
                   help="epochs of training the embedding layer on frozen pooled features first (image backbones; "
                        "default: the dataset's, else 0)")
    p.add_argument("--head-warmup-lr", type=float, default=None,
                   help="learning rate of the head warm-up (default: the dataset's, else 1e-3)")
    p.add_argument("--caa-on-features", action=argparse.BooleanOptionalAction, default=None,
                   help="osm_caa: CAA classifier on the backbone's pooled features (default: when it has them)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, loss=args.loss, data_root=args.data_root, data_args=dict(args.data_arg),
        loss_args=dict(args.loss_arg), model=args.model, model_args=dict(args.model_arg),
        embedding_dim=args.embedding_dim, epochs=args.epochs, patience=args.patience, batch_p=args.batch_p,
        batch_k=args.batch_k, batches_per_epoch=args.batches_per_epoch, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, loss_lr_mult=args.loss_lr_mult, schedule=args.schedule,
        val_fraction=args.val_fraction, seed=args.seed, device=args.device, amp=args.amp, out=args.out,
        resume=args.resume, num_workers=args.num_workers, progress=not args.no_progress,
        pretrained=args.pretrained, image_size=args.image_size, backbone_lr_mult=args.backbone_lr_mult,
        cache_images=args.cache_images, crop_scale_min=args.crop_scale_min, head_warmup_epochs=args.head_warmup_epochs,
        head_warmup_lr=args.head_warmup_lr, caa_on_features=args.caa_on_features)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from_args(args)
        result = train(config)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.teardown()
    if result.metrics:
        shown = {k: result.metrics[k] for k in (*METRIC_KEYS, "val_recall@1", "epochs", "seconds")}
        print(json.dumps(shown, indent=2))
        if config.out:
            print(f"wrote {Path(config.out) / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

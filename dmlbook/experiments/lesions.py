"""DeMAL-CNN at workbook scale: mixed attention + triplet + classification for skin-lesion images.

The helpers behind chapter 8 of the book (``notebooks/08_attention_triplet_skin_lesions.ipynb``), which tests
DeMAL-CNN (He, Wang, Zhao, Yao, *Deep metric attention learning for skin lesion classification in dermoscopy
images*, Complex & Intelligent Systems 2022): CBAM-style mixed (channel + spatial) attention inside the stages of
the embedding network (Woo, Park, Lee, Kweon, *CBAM: Convolutional Block Attention Module*, ECCV 2018), and a
hybrid loss = triplet loss on the embeddings + cross-entropy of a shared classifier
(:class:`~dmlbook.losses.HybridTripletLoss`). Only the paper's abstract was available: the network, the loss
weights and the training below are our reconstruction, not the paper's.

The network here is ``encoder -> head``:

* a :class:`~dmlbook.models.FrozenEncoder` runs once per image (:func:`encode`) and its output is cached:
  ``"pixels"`` only normalises the image (the whole network is then trained, from scratch); ``"mobilenet_v2"`` is
  ImageNet MobileNetV2 (Google's TF weights, ``$DMLBOOK_DATA/weights``) up to and including a stage of
  :data:`~dmlbook.models.mobilenet.STAGES` (stage 4: 64 channels at stride 16, a 14 x 14 grid at 224 px), frozen;
* the head is a :class:`~dmlbook.models.SmallCNN` (``conv-BN-ReLU-[MixedAttention]-pool`` stages, global
  average pooling, a linear embedding) trained with the hybrid loss; ``attention=True`` puts a mixed-attention
  block in every stage (:func:`build_head`).

Training (:func:`train_variant`) is one :func:`dmlbook.train.run` on the cached encoder outputs with P x K
batches (P = every class, so batches are class-balanced), random flips / 90° turns
(:class:`~dmlbook.data.RandomDihedral`), no validation split and a fixed number of epochs. Measures:
:func:`binary_metrics` (ROC AUC, accuracy, sensitivity, specificity at a threshold) and :func:`attention_report`
(spatial attention against lesion masks: mass inside the mask and pointing game, :mod:`dmlbook.attention.maps`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import check_fraction, check_positive
from ..attention.maps import centre_maps, mask_fraction, mass_in_mask, pointing_hits, spatial_attention_maps
from ..data import DMLDataset, RandomDihedral
from ..data._optional import require
from ..losses import HybridTripletLoss
from ..models import SmallCNN
from ..train import TrainConfig, run
from . import report

#: The four variants of the ablation: mixed attention in the head or not, triplet term in the loss or not.
VARIANTS: dict[str, dict[str, bool]] = {
    "baseline": {"attention": False, "triplet": False},
    "attention": {"attention": True, "triplet": False},
    "triplet": {"attention": False, "triplet": True},
    "demal": {"attention": True, "triplet": True},
}


# ------------------------------------------------------------------------------------------------- encoder
@torch.no_grad()
def encode(
    encoder: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Tensor:
    """``encoder`` applied to every image, in batches on ``device``: (N, 3, H, W) -> float32 (N, C, h, w) on CPU."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    starts = range(0, images.shape[0], batch_size)
    if progress:
        starts = require("tqdm.auto", "progress bars").tqdm(starts, desc="encoding", leave=False)
    out = [encoder(images[s : s + batch_size].to(device)).float().cpu() for s in starts]
    return torch.cat(out)  # (N, C, h, w)


# ---------------------------------------------------------------------------------------------- head, loss
def default_stages(feature_size: int) -> int:
    """Stages of 2x pooling that bring a ``feature_size`` map down to about 3-7 cells (at least one)."""
    if isinstance(feature_size, bool) or not isinstance(feature_size, int) or feature_size < 2:
        raise ValueError(f"feature_size must be an int >= 2; got {feature_size!r}")
    return max(1, math.floor(math.log2(feature_size / 3.5)))


def build_head(
    in_channels: int,
    feature_size: int,
    *,
    attention: bool,
    embedding_dim: int = 64,
    width: int = 32,
    num_stages: int | None = None,
    attention_reduction: int = 16,
) -> SmallCNN:
    """The trainable head: a :class:`~dmlbook.models.SmallCNN` on ``in_channels`` x ``feature_size``² inputs,
    with a :class:`~dmlbook.attention.MixedAttention` block in every stage when ``attention``
    (``num_stages`` default: :func:`default_stages`)."""
    stages = default_stages(feature_size) if num_stages is None else num_stages
    return SmallCNN(
        in_channels,
        embedding_dim,
        width=width,
        attention=attention,
        image_size=feature_size,
        num_stages=stages,
        attention_reduction=attention_reduction,
    )


def build_hybrid_loss(
    num_classes: int,
    embedding_dim: int,
    *,
    triplet_weight: float = 1.0,
    margin: float = 0.2,
    mining: str = "batch_hard",
    ce_weight: float = 1.0,
) -> HybridTripletLoss:
    """:class:`~dmlbook.losses.HybridTripletLoss` with its own classifier (``triplet_weight=0``: CE alone)."""
    return HybridTripletLoss(
        margin=margin,
        triplet_weight=triplet_weight,
        ce_weight=ce_weight,
        mining=mining,
        num_classes=num_classes,
        embedding_dim=embedding_dim,
    )


# -------------------------------------------------------------------------------------------------- training
@dataclass
class LesionRun:
    """One training of :func:`train_variant`: the head, the loss (it owns the classifier), the epoch history."""

    model: SmallCNN
    loss_fn: HybridTripletLoss
    history: list[dict[str, Any]]
    seconds: float


def train_config(
    *,
    epochs: int = 20,
    batch_k: int = 32,
    num_classes: int = 2,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str = "cpu",
    batches_per_epoch: int | None = None,
) -> TrainConfig:
    """A resolved :class:`~dmlbook.train.TrainConfig` for :func:`train_variant`: Adam, cosine schedule, P = every
    class x K = ``batch_k`` (class-balanced batches), no validation split, no early stopping."""
    return TrainConfig(
        dataset="synthetic",
        loss="demal",
        model="small_cnn",
        epochs=epochs,
        patience=0,
        batch_p=num_classes,
        batch_k=batch_k,
        batches_per_epoch=batches_per_epoch,
        lr=lr,
        weight_decay=weight_decay,
        val_fraction=0.0,
        seed=seed,
        device=device,
        progress=False,
        num_workers=0,
        schedule="cosine",
        backbone_lr_mult=1.0,
    ).resolved()


def train_variant(
    features: Tensor,
    labels: Any,
    *,
    attention: bool,
    triplet_weight: float,
    config: TrainConfig,
    embedding_dim: int = 64,
    width: int = 32,
    num_stages: int | None = None,
    margin: float = 0.2,
    mining: str = "batch_hard",
    augment: bool = True,
) -> LesionRun:
    """Train a head (+ its classifier) on cached encoder outputs ``features`` (N, C, h, w) with ``labels`` (N,).

    One :func:`dmlbook.train.run` of ``config`` (on ``config.device``) on the features, without a test split. The
    head (:func:`build_head`) and then the loss (:func:`build_hybrid_loss`) are built from ``config.seed``, so
    every variant with the same architecture starts from the same weights; with ``augment`` each sample is
    flipped / turned at random (:class:`~dmlbook.data.RandomDihedral`).
    """
    if not isinstance(features, Tensor) or features.dim() != 4 or features.shape[-1] != features.shape[-2]:
        raise ValueError("features must be a (N, C, h, h) tensor of square encoder outputs")
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1
    train_set = DMLDataset(
        features,
        labels,
        class_ids=np.arange(num_classes),
        transform=RandomDihedral() if augment else None,
        name="lesion_features",
    )
    # the head's initial weights, then the classifier's, drawn from the seed in this order (run() re-seeds only
    # what it builds itself)
    torch.manual_seed(config.seed)
    model = build_head(
        features.shape[1],
        features.shape[-1],
        attention=attention,
        embedding_dim=embedding_dim,
        width=width,
        num_stages=num_stages,
    )
    loss_fn = build_hybrid_loss(
        num_classes, embedding_dim, triplet_weight=triplet_weight, margin=margin, mining=mining
    )
    started = time.perf_counter()
    result = run(
        config, model=model, loss_fn=loss_fn, splits=(train_set, None, None), embedding_dim=embedding_dim
    )
    return LesionRun(result.model.cpu(), result.loss_fn.cpu(), result.history, time.perf_counter() - started)


@torch.no_grad()
def predict_proba(
    run: LesionRun, features: Tensor, *, batch_size: int = 256, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Class probabilities (N, K) of the run's classifier on cached encoder outputs, in eval mode."""
    device = torch.device(device)
    model, loss_fn = run.model.to(device).eval(), run.loss_fn.to(device).eval()
    out = [
        loss_fn.predict_proba(model(features[s : s + batch_size].to(device))).float().cpu()
        for s in range(0, features.shape[0], batch_size)
    ]
    run.model.cpu()
    run.loss_fn.cpu()
    return torch.cat(out).numpy()  # (N, K)


# -------------------------------------------------------------------------------------------------- measures
def binary_metrics(positive: Any, score: Any, *, threshold: float = 0.5) -> dict[str, float]:
    """Diagnostic measures of ``score`` (e.g. p(malignant)) against the boolean truth ``positive``.

    ``auc``: ROC AUC (sklearn); at ``score >= threshold``: ``sensitivity`` (recall of positives), ``specificity``
    (recall of negatives), ``accuracy`` and ``balanced_accuracy`` (their mean). NaN where undefined.
    """
    y = np.asarray(positive).reshape(-1)
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("positive must be boolean (or 0/1)")
        y = y.astype(bool)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"score has {s.size} entries but positive has {y.size}")
    if not np.isfinite(s).all():
        raise ValueError("score contains NaN or infinite values")
    threshold = check_fraction(threshold, "threshold")
    pred = s >= threshold
    sens = float(pred[y].mean()) if y.any() else math.nan
    spec = float((~pred[~y]).mean()) if (~y).any() else math.nan
    auc = math.nan
    if y.any() and (~y).any():
        auc = float(require("sklearn.metrics", "ROC AUC").roc_auc_score(y, s))
    return {
        "auc": auc,
        "accuracy": float((pred == y).mean()),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": (sens + spec) / 2,
    }


def stratified_folds(labels: Any, folds: int, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train indices, test indices)`` of a seeded stratified ``folds``-fold split (sklearn's StratifiedKFold
    with shuffling): every sample is tested exactly once, each class in the same proportion in every fold."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2; got {folds!r}")
    y = np.asarray(labels)
    model_selection = require("sklearn.model_selection", "stratified folds")
    splitter = model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(np.zeros(len(y)), y)]


def attention_report(
    model: nn.Module,
    features: Tensor,
    masks: Tensor,
    *,
    block: int | str = "mean",
    normalize: str = "sum",
    tolerance: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Where the head's spatial attention falls, against lesion ``masks`` (N, H, W) at the image size.

    The maps (:func:`~dmlbook.attention.spatial_attention_maps`, resized from the feature grid to H x W) are
    scored per image: ``in_mask`` (share of the map's mass inside the mask), ``hit`` (pointing game); returned
    with their means (``in_mask_mean``, ``hit_rate``) and the ``maps`` themselves (N, H, W), on CPU.
    """
    model = model.to(device)
    maps = spatial_attention_maps(
        model,
        features.to(device),
        size=tuple(masks.shape[-2:]),
        block=block,
        normalize=normalize,
        batch_size=batch_size,
    ).cpu()  # (N, H, W)
    model.cpu()
    share = mass_in_mask(maps, masks)  # (N,)
    hits = pointing_hits(maps, masks, tolerance=tolerance)  # (N,)
    return {
        "maps": maps,
        "in_mask": share.numpy(),
        "hit": hits.numpy(),
        "in_mask_mean": float(share.mean()),
        "hit_rate": float(hits.float().mean()),
    }


def baseline_report(masks: Tensor, *, sigma: float = 0.25, tolerance: int = 0) -> dict[str, dict[str, float]]:
    """The reference maps scored like :func:`attention_report`: ``uniform`` (in-mask share = the mask's area
    fraction; its pointing "hit" is the top-left pixel, so it is not reported) and ``centre`` (a centred
    Gaussian of standard deviation ``sigma`` x the shorter side)."""
    check_positive(sigma, "sigma")
    n, h, w = masks.shape
    centre = centre_maps(n, (h, w), sigma=sigma)
    return {
        "uniform": {"in_mask_mean": float(mask_fraction(masks).mean()), "hit_rate": math.nan},
        "centre": {
            "in_mask_mean": float(mass_in_mask(centre, masks).mean()),
            "hit_rate": float(pointing_hits(centre, masks, tolerance=tolerance).float().mean()),
        },
    }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """:func:`dmlbook.experiments.report.mean_std` of the finite ``values`` (a fold whose AUC is undefined is NaN); NaN, NaN
    if there are none."""
    finite = [float(x) for x in values if math.isfinite(x)]
    return report.mean_std(finite) if finite else (math.nan, math.nan)


__all__ = [
    "VARIANTS",
    "LesionRun",
    "attention_report",
    "baseline_report",
    "binary_metrics",
    "build_head",
    "build_hybrid_loss",
    "default_stages",
    "encode",
    "mean_std",
    "predict_proba",
    "stratified_folds",
    "train_config",
    "train_variant",
]

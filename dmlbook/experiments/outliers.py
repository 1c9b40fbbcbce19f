"""Finding corrupted training samples with class-aware attention, and training under label noise.

The helpers behind chapter 3 of the book (``notebooks/03_outlier_attention.ipynb``), which tests a claim of
Wang, Hua, Kodirov, Hu & Robertson, *Deep Metric Learning by Online Soft Mining and Class-Aware Attention*
(AAAI 2019): the attention ``a_i = p(y_i | x_i)`` of a classifier trained with the embedding is low for outliers
and mislabelled samples, so weighting pairs by ``min(a_i, a_j)`` keeps them from misleading the metric.

* :func:`foreign_split`: a dataset's class-disjoint train / test split with some classes set aside as a pool
  of *foreign* images (outliers that belong to no labelled class) — used by
  :func:`~dmlbook.data.corrupt`;
* :func:`noise_fractions`: a total noise rate -> (outlier fraction, flip fraction);
* :func:`train_noisy`: train one embedding on a (corrupted) training set with :func:`dmlbook.train.run`,
  measure Recall@1 on the clean test classes and, with CAA, read every training sample's attention;
* :func:`sample_attention`, :func:`detection_auc`, :func:`detection_roc`, :func:`detection_report`,
  :func:`lowest_attention`, :func:`precision_at_lowest`: score attention as a detector of the corrupted samples
  (ROC AUC: the chance that a random corrupted sample gets lower attention than a random clean one);
* :func:`corruption_kinds`, :func:`sample_captions`: what each sample is, for tables and image grids.

scikit-learn is imported only by the ROC functions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import check_fraction
from ..data import DMLDataset, load_dataset
from ..data._optional import require
from ..train import LambdaCallback, TrainConfig, embed, run, subsample


def noise_fractions(rate: float, outlier_share: float = 0.5) -> tuple[float, float]:
    """``(outlier_fraction, flip_fraction)`` for a total noise ``rate`` of which ``outlier_share`` are outliers."""
    rate, outlier_share = check_fraction(rate, "rate"), check_fraction(outlier_share, "outlier_share")
    return rate * outlier_share, rate * (1.0 - outlier_share)


def foreign_split(
    name: str,
    foreign_classes: Sequence[int],
    *,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[DMLDataset, DMLDataset, DMLDataset]:
    """``(train, test, foreign)`` of a registered dataset, with ``foreign_classes`` out of both sides.

    ``train`` / ``test`` are the dataset's standard class-disjoint split (``load_dataset(name, split=...)``,
    no validation carve-out) without the foreign classes, labels renumbered ``0 .. C-1``; ``foreign`` holds
    every image of the foreign classes (ids as in ``class_ids``), to be used as outliers by
    :func:`~dmlbook.data.corrupt`. ``max_train`` / ``max_test`` keep a seeded random subset of that many
    samples (:func:`dmlbook.train.subsample`; ``None``: all). ``kwargs`` go to :func:`~dmlbook.data.load_dataset`.
    """
    foreign_classes = [int(c) for c in foreign_classes]
    everything = load_dataset(name, split="all", seed=seed, **kwargs)
    unknown = sorted(set(foreign_classes) - set(everything.class_ids.tolist()))
    if unknown:
        raise ValueError(
            f"foreign_classes {unknown} are not class ids of {name!r} "
            f"(ids: {everything.class_ids.tolist()[:20]}...)"
        )
    parts = []
    for split in ("train", "test"):
        part = load_dataset(name, split=split, val_fraction=0.0, seed=seed, **kwargs)
        keep = ~np.isin(part.class_ids[part.labels], foreign_classes)
        if len(np.unique(part.labels[keep])) < 2:
            raise ValueError(
                f"removing foreign_classes {foreign_classes} leaves fewer than 2 {split} classes"
            )
        parts.append(part.subset(keep, relabel=True))
    foreign = everything.subset(
        np.isin(everything.class_ids[everything.labels], foreign_classes), split="foreign"
    )
    return subsample(parts[0], max_train, seed), subsample(parts[1], max_test, seed), foreign


@torch.no_grad()
def sample_attention(
    model: nn.Module,
    loss_fn: nn.Module,
    dataset: DMLDataset,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> np.ndarray:
    """Every sample's class-aware attention ``a_i`` (N,) under its *observed* label, from the classifier that
    ``loss_fn`` owns (``OSMCAALoss(num_classes=..., embedding_dim=...)``), in eval mode."""
    classifier = getattr(loss_fn, "classifier", None)
    if classifier is None:
        raise ValueError(
            "loss_fn has no classifier: build it as OSMCAALoss(num_classes=..., embedding_dim=...) "
            "(train's build_loss_for does this for 'osm_caa')"
        )
    emb, labels = embed(model, dataset, device=device, batch_size=batch_size)  # (N, D), (N,)
    was_training = classifier.training
    classifier.eval()
    weight = next(classifier.parameters())
    attention, _ = classifier(emb.to(weight.device, weight.dtype), labels.to(weight.device))  # (N,)
    classifier.train(was_training)
    return attention.float().cpu().numpy()


def _check_scores(attention: Any, corrupted: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(attention, dtype=np.float64).reshape(-1)
    c = np.asarray(corrupted).reshape(-1)
    if c.dtype != bool:
        if not np.isin(c, (0, 1)).all():
            raise ValueError("corrupted must be a boolean mask (or 0/1)")
        c = c.astype(bool)
    if a.shape != c.shape:
        raise ValueError(f"attention has {a.size} entries but corrupted has {c.size}")
    if not np.isfinite(a).all():
        raise ValueError("attention contains NaN or infinite values")
    return a, c


def detection_auc(attention: Any, corrupted: Any) -> float:
    """ROC AUC of *low attention* as a detector of ``corrupted`` samples (sklearn's ``roc_auc_score`` on
    ``-attention``): 1 = every corrupted sample below every clean one, 0.5 = chance. NaN when ``corrupted`` is
    all True or all False (the AUC is undefined)."""
    a, c = _check_scores(attention, corrupted)
    if c.all() or not c.any():
        return math.nan
    metrics = require("sklearn.metrics", "ROC AUC")
    return float(metrics.roc_auc_score(c, -a))


def detection_roc(attention: Any, corrupted: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(false_positive_rate, true_positive_rate)`` of low attention as a detector (for an ROC curve)."""
    a, c = _check_scores(attention, corrupted)
    if c.all() or not c.any():
        raise ValueError("an ROC curve needs both corrupted and clean samples")
    metrics = require("sklearn.metrics", "ROC curves")
    fpr, tpr, _ = metrics.roc_curve(c, -a)
    return fpr, tpr


def lowest_attention(attention: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` samples with the lowest attention, lowest first (ties by index)."""
    a = np.asarray(attention, dtype=np.float64).reshape(-1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be an integer >= 0; got {k!r}")
    return np.argsort(a, kind="stable")[: min(int(k), a.size)]


def precision_at_lowest(attention: Any, corrupted: Any, k: int | None = None) -> float:
    """Share of corrupted samples among the ``k`` lowest-attention ones (default ``k`` = number corrupted, which
    makes it the R-precision of the detector)."""
    a, c = _check_scores(attention, corrupted)
    k = int(c.sum()) if k is None else k
    if k == 0:
        return math.nan
    return float(c[lowest_attention(a, k)].mean())


def corruption_kinds(dataset: DMLDataset) -> np.ndarray:
    """Per sample ``"clean"``, ``"outlier"`` or ``"flipped"`` (a dataset made by :func:`~dmlbook.data.corrupt`)."""
    is_out, is_flip = (np.asarray(dataset.meta[k], bool) for k in ("is_outlier", "is_flipped"))
    return np.where(is_out, "outlier", np.where(is_flip, "flipped", "clean"))


def detection_report(attention: Any, dataset: DMLDataset) -> dict[str, float]:
    """How well low attention singles out the corrupted samples of ``dataset`` (made by
    :func:`~dmlbook.data.corrupt`): ``auc`` (all corrupted vs clean), ``auc_outliers`` (outliers vs clean),
    ``auc_flipped`` (flipped vs clean), ``precision`` (:func:`precision_at_lowest`) and the mean attention of
    each kind (``mean_clean``, ``mean_outlier``, ``mean_flipped``). Undefined values are NaN."""
    kinds = corruption_kinds(dataset)
    a, _ = _check_scores(attention, kinds != "clean")
    if a.size != len(dataset):
        raise ValueError(f"attention has {a.size} entries but the dataset has {len(dataset)} samples")
    out = {"auc": detection_auc(a, kinds != "clean")}
    for kind in ("outlier", "flipped"):
        keep = (kinds == kind) | (kinds == "clean")
        out[f"auc_{kind}s" if kind == "outlier" else "auc_flipped"] = detection_auc(
            a[keep], kinds[keep] == kind
        )
    out["precision"] = precision_at_lowest(a, kinds != "clean")
    for kind in ("clean", "outlier", "flipped"):
        out[f"mean_{kind}"] = float(a[kinds == kind].mean()) if (kinds == kind).any() else math.nan
    return out


def sample_captions(
    dataset: DMLDataset, indices: Sequence[int], *, foreign: DMLDataset | None = None
) -> list[tuple[str, str]]:
    """``(caption, kind)`` for each sample: its observed label's name and what it really is — ``"clean"``,
    ``"flipped"`` (with the true class) or ``"outlier"`` (with the foreign class, when ``foreign`` is the pool
    given to :func:`~dmlbook.data.corrupt`)."""
    kinds = corruption_kinds(dataset)

    def name(labels_of: DMLDataset, label: int) -> str:
        return (
            str(labels_of.class_names[label])
            if labels_of.class_names is not None
            else str(labels_of.class_ids[label])
        )

    by_id = {}
    if foreign is not None:
        by_id = {
            int(c): (str(foreign.class_names[j]) if foreign.class_names is not None else str(int(c)))
            for j, c in enumerate(foreign.class_ids)
        }
    out = []
    for i in np.asarray(indices, dtype=np.int64).tolist():
        kind = str(kinds[i])
        text = f"label: {name(dataset, int(dataset.labels[i]))}"
        if kind == "flipped":
            text += f"\nis: {name(dataset, int(dataset.meta['true_labels'][i]))} (flipped)"
        elif kind == "outlier":
            cls = int(dataset.meta.get("outlier_class", np.full(len(dataset), -1))[i])
            text += f"\nis: {by_id.get(cls, 'foreign')} (outlier)" if cls >= 0 else "\noutlier"
        else:
            text += "\nclean"
        out.append((text, kind))
    return out


@dataclass
class NoisyRun:
    """One training of :func:`train_noisy`: test Recall@1 on clean classes, the per-sample attention on the
    training set (``None`` without CAA), the epoch history, and the trained model and loss."""

    loss: str
    recall_at_1: float
    attention: np.ndarray | None
    history: list[dict[str, Any]]
    model: nn.Module
    loss_fn: nn.Module
    seconds: float


def train_noisy(
    loss: str,
    train_set: DMLDataset,
    test_set: DMLDataset,
    config: TrainConfig,
    *,
    loss_args: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> NoisyRun:
    """Train ``config``'s model with ``loss`` (``"osm"`` or ``"osm_caa"``, or any loss name) on ``train_set``
    (possibly corrupted) with :func:`dmlbook.train.run`, then measure leave-one-out Recall@1 on ``test_set`` and,
    when the loss has a classifier, every training sample's attention.

    ``config`` is a :class:`~dmlbook.train.TrainConfig` (``loss`` is replaced, ``loss_args`` are added to its
    ``loss_args`` for this run only; ``device``, when given, replaces its device). No validation split is used
    (early stopping on noisy validation classes would blur the comparison), so the last epoch's weights are
    measured. The model is initialised from ``config.seed``, the same for every loss. ``on_epoch`` receives each
    epoch's history record.
    """
    overrides: dict[str, Any] = {"device": str(device)} if device is not None else {}
    cfg = dataclasses.replace(
        config, loss=loss, val_fraction=0.0, loss_args={**config.loss_args, **(loss_args or {})}, **overrides
    )
    callbacks = [LambdaCallback(on_epoch=on_epoch)] if on_epoch is not None else []
    result = run(cfg, splits=(train_set, None, test_set), callbacks=callbacks, nmi=False)
    attention = None
    if getattr(result.loss_fn, "classifier", None) is not None:
        attention = sample_attention(
            result.model,
            result.loss_fn,
            train_set,
            device=result.metrics["device"],
            batch_size=result.config.eval_batch_size,
        )
    return NoisyRun(
        loss,
        float(result.metrics["recall@1"]),
        attention,
        result.history,
        result.model,
        result.loss_fn,
        float(result.metrics["seconds"]),
    )


__all__ = [
    "NoisyRun",
    "corruption_kinds",
    "detection_auc",
    "detection_report",
    "detection_roc",
    "foreign_split",
    "lowest_attention",
    "noise_fractions",
    "precision_at_lowest",
    "sample_attention",
    "sample_captions",
    "train_noisy",
]

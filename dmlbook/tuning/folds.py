"""Class-disjoint k-fold cross-validation inside the training classes.

Musgrave, Belongie & Lim (*A Metric Learning Reality Check*, ECCV 2020) choose hyper-parameters without
looking at the test classes: the training classes are shuffled and dealt into k parts; fold i trains on the
other k − 1 parts and validates on part i, so that validation, like the test, asks about classes never trained
on. Every training class is a validation class in exactly one fold. With ``groups`` (e.g. Omniglot's
alphabets) whole groups are dealt instead of classes, so that no group is on both sides of a fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_int


@dataclass(frozen=True)
class Fold:
    """One fold: sample indices of its training and validation sides and the validation classes (labels).

    Attributes:
        index: 0 .. k-1.
        train, val: sorted sample indices into the labels the folds were made from (disjoint; together all).
        val_classes: the labels of the validation side, sorted (no training sample has one of them).
    """

    index: int
    train: np.ndarray
    val: np.ndarray
    val_classes: np.ndarray


def _labels(labels: Any, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise TypeError(f"{name} must be a 1-D integer array; got dtype {labels.dtype}, shape {labels.shape}")
    return labels


def class_folds(labels: Any, *, k: int = 4, seed: int = 0, groups: Any = None) -> list[Fold]:
    """``k`` class-disjoint folds of the samples with these ``labels``.

    The classes (or, with ``groups``, the per-sample group ids) are permuted with
    ``numpy.random.default_rng(seed)`` and dealt into ``k`` parts of sizes differing by at most one; fold
    ``i`` validates on the classes of part ``i`` and trains on the rest. The same labels and seed give the
    same folds.

    Args:
        labels: one integer class label per sample.
        k: the number of folds (>= 2). Every validation side needs at least 2 classes (MAP@R of one class is
            trivially 1), so there must be at least ``2 k`` classes.
        seed: seeds the permutation.
        groups: optional per-sample group ids (every class inside one group); whole groups are dealt.

    Raises:
        TypeError / ValueError: bad labels, ``k < 2``, too few classes (or groups) for ``k`` folds, or a class
        spread over several groups.
    """
    labels = _labels(labels, "labels")
    k = check_int(k, "k", 2)
    seed = check_int(seed, "seed", 0)
    classes = np.unique(labels)
    if len(classes) < 2 * k:
        raise ValueError(
            f"k={k} class-disjoint folds need at least {2 * k} training classes (2 per validation "
            f"fold); the training split has {len(classes)}: lower k"
        )
    if groups is None:
        units, of_sample = classes, labels
    else:
        of_sample = np.asarray(groups)
        if of_sample.shape != labels.shape:
            raise ValueError(
                f"groups must have one entry per sample ({len(labels)}); got shape {of_sample.shape}"
            )
        pairs = np.unique(
            np.stack(
                [np.unique(labels, return_inverse=True)[1], np.unique(of_sample, return_inverse=True)[1]]
            ),
            axis=1,
        )  # (2, pairs)
        if len(np.unique(pairs[0])) != pairs.shape[1]:
            raise ValueError(
                "every class must lie inside one group; some class has samples in several groups"
            )
        units = np.unique(of_sample)
        if len(units) < k:
            raise ValueError(
                f"k={k} group-disjoint folds need at least {k} groups; the training split has "
                f"{len(units)}: lower k"
            )
    parts = np.array_split(np.random.default_rng(seed).permutation(units), k)
    folds = []
    for i, part in enumerate(parts):
        is_val = np.isin(of_sample, part)  # (N,)
        val_classes = np.unique(labels[is_val])
        if len(val_classes) < 2:
            raise ValueError(
                f"fold {i} would validate on {len(val_classes)} class; every validation fold needs at "
                "least 2 classes: lower k"
            )
        folds.append(Fold(i, np.flatnonzero(~is_val), np.flatnonzero(is_val), val_classes))
    return folds


def fold_datasets(dataset: Any, fold: Fold) -> tuple[Any, Any]:
    """``(train, val)`` subsets of ``dataset`` for ``fold`` (labels renumbered ``0 .. C-1`` on each side,
    split names ``"train"`` and ``"val"``, so that a run augments the training side only)."""
    if not hasattr(dataset, "subset"):
        raise TypeError(f"dataset must be a DMLDataset (with .subset); got {type(dataset).__name__}")
    return (
        dataset.subset(fold.train, relabel=True, split="train"),
        dataset.subset(fold.val, relabel=True, split="val"),
    )


__all__ = ["Fold", "class_folds", "fold_datasets"]

"""Standard splits for deep metric learning, and a class-disjoint validation carve-out.

DML evaluates on classes never seen in training (Oh Song et al., "Deep Metric Learning via Lifted Structured
Feature Embedding", CVPR 2016): Cars196 classes 1-98 train / 99-196 test, CUB-200-2011 1-100 / 101-200,
Stanford Online Products by its ``Ebay_train.txt`` / ``Ebay_test.txt``. Hyper-parameters and early stopping
must then be chosen on held-out *training* classes, never on the test classes (Musgrave et al., "A Metric
Learning Reality Check", ECCV 2020); :func:`carve_val_classes` picks them.

Each loader returns a :class:`SplitSource` (the whole dataset plus which samples are on the training side);
:func:`apply_split` turns it into ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_fraction
from .dataset import DMLDataset

SPLITS = ("train", "val", "test", "all")


@dataclass
class SplitSource:
    """A whole dataset and its train side: ``train`` is a boolean mask over samples.

    ``by_class=True``: the train side is a set of classes, and validation is carved out as whole classes;
    ``False`` (e.g. Fashion-MNIST's official image split): validation is a random fraction of training samples.
    ``groups``: optional per-sample group ids (e.g. Omniglot's alphabets); with ``by_class``, validation is then
    carved out as whole groups (``val_fraction`` of the training groups) instead of whole classes.
    """

    dataset: DMLDataset
    train: np.ndarray
    by_class: bool = True
    groups: np.ndarray | None = None


def class_mask(labels: np.ndarray, class_ids: np.ndarray, keep: Sequence[int] | np.ndarray) -> np.ndarray:
    """Boolean mask of the samples whose class id (``class_ids[labels]``) is in ``keep``."""
    return np.isin(np.asarray(class_ids)[labels], np.asarray(keep))


def first_classes(dataset: DMLDataset, train_classes: int | Sequence[int] | None = None) -> np.ndarray:
    """Train mask from ``train_classes``: a count (the first ones in sorted id order; default half) or ids."""
    ids = np.sort(dataset.class_ids)
    name = f"{dataset.name!r} " if dataset.name else ""
    if len(ids) < 2:
        raise ValueError(
            f"dataset {name}has {len(ids)} class{'es' * (len(ids) != 1)}; a class-disjoint "
            "train/test split needs at least 2"
        )
    if train_classes is None:
        train_classes = max(1, len(ids) // 2)
    if isinstance(train_classes, (int, np.integer)) and not isinstance(train_classes, bool):
        if not 1 <= train_classes < len(ids):
            raise ValueError(
                f"train_classes must be between 1 and {len(ids) - 1} for dataset {name}(it has "
                f"{len(ids)} classes, and each side of the split needs one); got {train_classes}"
            )
        keep = ids[:train_classes]
    else:
        keep = np.asarray(list(train_classes))
        unknown = np.setdiff1d(keep, ids)
        if unknown.size:
            raise ValueError(
                f"train_classes contains ids that are not classes of the dataset: {unknown[:10].tolist()}"
            )
    return class_mask(dataset.labels, dataset.class_ids, keep)


def carve_val_classes(
    classes: Sequence[int] | np.ndarray, *, val_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``classes`` into (train, val) ids: ``round(val_fraction * n)`` random classes (at least one when
    ``val_fraction > 0``) go to validation, seeded by ``seed``. Both parts are returned sorted."""
    check_fraction(val_fraction, "val_fraction")
    classes = np.unique(np.asarray(classes))
    if val_fraction == 0:
        return classes, classes[:0]
    n_val = max(1, round(val_fraction * len(classes)))
    if n_val >= len(classes):
        raise ValueError(
            f"val_fraction={val_fraction} would leave no training classes out of {len(classes)}; "
            "use a smaller fraction"
        )
    val = np.random.default_rng(seed).choice(classes, size=n_val, replace=False)
    return np.setdiff1d(classes, val), np.sort(val)


def stratified_mask(
    labels: np.ndarray | Sequence[int], *, test_fraction: float = 0.2, seed: int = 0
) -> np.ndarray:
    """Train mask of a per-class (stratified) *sample* split, for classification on seen classes.

    From every class with n_c samples, ``round(test_fraction * n_c)`` samples (at least 1 when n_c >= 2 and
    ``test_fraction > 0``, never all of them) go to the test side, drawn with ``numpy.random.default_rng(seed)``
    class by class in sorted label order; the mask is True for the rest. Every class with two or more samples is
    on both sides.
    """
    test_fraction = check_fraction(test_fraction, "test_fraction")
    if test_fraction >= 1.0:
        raise ValueError(
            f"test_fraction must be < 1 (some samples of each class must stay for training); "
            f"got {test_fraction}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise TypeError(f"labels must be a 1-D integer array; got dtype {labels.dtype}, shape {labels.shape}")
    rng = np.random.default_rng(seed)
    train = np.ones(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_test = (
            min(len(members) - 1, max(1, round(test_fraction * len(members)))) if test_fraction > 0 else 0
        )
        if n_test > 0:
            train[rng.choice(members, size=n_test, replace=False)] = False
    return train


def stratified_split(
    dataset: DMLDataset, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[DMLDataset, DMLDataset]:
    """``(train, test)`` subsets of ``dataset`` by :func:`stratified_mask`: the same classes on both sides, for
    scene classification and retrieval among seen classes (not the class-disjoint DML protocol). Labels keep the
    dataset's label space (no renumbering), so a classifier trained on ``train`` reads ``test``'s labels."""
    train = stratified_mask(dataset.labels, test_fraction=test_fraction, seed=seed)
    return dataset.subset(train, split="train"), dataset.subset(~train, split="test")


def apply_split(source: SplitSource, split: str, *, val_fraction: float = 0.2, seed: int = 0) -> DMLDataset:
    """The ``split`` of ``source``: ``"all"`` keeps everything (labels as loaded); ``"train"``/``"val"``/``"test"``
    are subsets with labels renumbered ``0 .. C-1``. ``"val"`` is carved from the train side (whole classes
    when ``source.by_class``, whole groups when ``source.groups`` is set too) and ``"train"`` excludes it;
    ``val_fraction=0`` gives no validation split."""
    check_choice(split, SPLITS, "split")
    val_fraction = check_fraction(val_fraction, "val_fraction")
    ds, train = source.dataset, np.asarray(source.train, dtype=bool)
    if split == "all":
        return ds.subset(np.arange(len(ds)), split="all")
    if split == "test":
        return ds.subset(~train, relabel=True, split="test")
    if split == "val" and val_fraction == 0:
        raise ValueError(
            "split='val' needs val_fraction > 0 (val_fraction=0 puts every training class in 'train')"
        )
    if source.by_class and source.groups is not None:
        groups = np.asarray(source.groups)
        _, val_groups = carve_val_classes(np.unique(groups[train]), val_fraction=val_fraction, seed=seed)
        val = train & np.isin(groups, val_groups)
    elif source.by_class:
        _, val_ids = carve_val_classes(
            np.unique(ds.class_ids[ds.labels[train]]), val_fraction=val_fraction, seed=seed
        )
        val = train & class_mask(ds.labels, ds.class_ids, val_ids)
    else:
        train_idx = np.flatnonzero(train)
        n_val = max(1, round(val_fraction * len(train_idx))) if val_fraction > 0 else 0
        val = np.zeros(len(ds), dtype=bool)
        val[np.random.default_rng(seed).choice(train_idx, size=n_val, replace=False)] = True
    return ds.subset(val if split == "val" else train & ~val, relabel=True, split=split)

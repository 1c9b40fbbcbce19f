"""Inject label noise with known ground truth into a real, in-memory dataset.

:func:`corrupt` returns a copy of a :class:`~dmlbook.data.DMLDataset` in which a chosen fraction of samples are
**outliers** and another fraction have **flipped labels**, and records which ones in ``meta`` (the same keys as
:func:`~dmlbook.data.make_blobs`), so that a method that claims to find corrupted samples — class-aware
attention (Wang et al., *Deep Metric Learning by Online Soft Mining and Class-Aware Attention*, AAAI 2019) —
can be scored against the truth.

What the two kinds of corruption mean here:

* **flipped label**: the sample is untouched, its label is replaced by a different class of the dataset, drawn
  uniformly among the other classes present (symmetric label noise);
* **outlier**: the sample's *content* is replaced by something that belongs to none of the labelled classes,
  while the slot keeps its label — like a web-crawled image of the wrong thing filed under a real class, or
  a failed person detection in re-identification. Three sources, chosen by ``outliers``:

  - a dataset (or tensor) of **foreign samples**, typically images of classes kept out of the label set (the
    most realistic choice: real images with real statistics, just not of any labelled class). They are drawn
    without replacement while the pool lasts;
  - ``"shuffle"``: the sample's own values randomly permuted (pixels of an image, dimensions of a feature
    vector): the same value histogram, no structure;
  - ``"noise"``: uniform noise over the dataset's value range.

Outliers keep ``true_labels`` equal to their (unchanged) observed label, as in the synthetic generators; for
foreign samples ``outlier_source`` holds the pool index and ``outlier_class`` the pool's label (-1 otherwise).
Corrupted samples are chosen uniformly at random, so outliers fall in each class in proportion to its size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_fraction
from .dataset import DMLDataset

OUTLIER_KINDS = ("shuffle", "noise")
CORRUPTION_KEYS = ("true_labels", "is_outlier", "is_flipped", "outlier_source", "outlier_class")


def _pool_tensors(pool: Any) -> tuple[Tensor, np.ndarray]:
    """Data (N, ...) and labels (N,) of a foreign pool (a DMLDataset or a tensor, labels -1)."""
    if isinstance(pool, DMLDataset):
        if pool.data is None:
            raise TypeError(
                "outliers: the pool must hold its samples in memory (a DMLDataset with .data, "
                "not an ImageDataset)"
            )
        return pool.data, pool.class_ids[pool.labels]
    if isinstance(pool, Tensor):
        return pool, np.full(pool.shape[0], -1, dtype=np.int64)
    raise TypeError(
        f"outliers must be 'shuffle', 'noise', a DMLDataset or a Tensor of foreign samples; "
        f"got {type(pool).__name__}"
    )


def _match_dtype(values: Tensor, like: Tensor) -> Tensor:
    """``values`` in ``like``'s dtype; uint8 images <-> float images in [0, 1] are rescaled."""
    if values.dtype == like.dtype:
        return values.clone()
    if like.dtype == torch.uint8:
        return values.float().mul(255).round().clamp(0, 255).to(torch.uint8)
    if values.dtype == torch.uint8:
        return values.to(like.dtype).div(255)
    return values.to(like.dtype)


def corrupt(
    dataset: DMLDataset,
    *,
    outlier_fraction: float = 0.0,
    flip_fraction: float = 0.0,
    outliers: str | DMLDataset | Tensor = "shuffle",
    seed: int = 0,
) -> DMLDataset:
    """A copy of ``dataset`` with ``round(outlier_fraction·N)`` outliers and ``round(flip_fraction·N)`` flipped
    labels (disjoint sets), and the ground truth in ``meta``.

    Args:
        dataset: an in-memory :class:`DMLDataset` (``.data`` a tensor; images or feature vectors).
        outlier_fraction: share of samples whose content is replaced (see the module docstring).
        flip_fraction: share of samples whose label is changed to another class present in ``dataset``.
        outliers: ``"shuffle"``, ``"noise"``, or foreign samples — a :class:`DMLDataset` or a tensor shaped
            like one sample batch of ``dataset`` (``(M, *dataset.data.shape[1:])``).
        seed: seeds every random choice; the same seed gives the same corruption.

    Returns:
        A new :class:`DMLDataset` (the input is not modified) with the corrupted ``data`` and ``labels`` and
        ``meta`` entries ``true_labels`` (labels before flipping), ``is_outlier``, ``is_flipped`` (bool),
        ``outlier_source`` (pool index of a foreign outlier, else -1) and ``outlier_class`` (the pool's class
        id of a foreign outlier, else -1). Existing ``meta`` entries are kept.
    """
    if not isinstance(dataset, DMLDataset) or dataset.data is None:
        raise TypeError(
            "dataset must be an in-memory DMLDataset (with .data); decode an ImageDataset first, e.g. "
            "DMLDataset(*ds.as_tensors())"
        )
    outlier_fraction = check_fraction(outlier_fraction, "outlier_fraction")
    flip_fraction = check_fraction(flip_fraction, "flip_fraction")
    n = len(dataset)
    n_out, n_flip = round(outlier_fraction * n), round(flip_fraction * n)
    if n_out + n_flip > n:
        raise ValueError(
            f"outlier_fraction + flip_fraction must be <= 1; got {outlier_fraction} + {flip_fraction}"
        )
    present = np.unique(dataset.labels)
    if n_flip and len(present) < 2:
        raise ValueError("flip_fraction > 0 needs at least 2 classes in the dataset")
    if isinstance(outliers, str) and outliers not in OUTLIER_KINDS:
        raise ValueError(
            f"outliers must be one of {', '.join(map(repr, OUTLIER_KINDS))}, a DMLDataset or a "
            f"Tensor; got {outliers!r}"
        )
    pool = pool_labels = None
    if not isinstance(outliers, str):
        pool, pool_labels = _pool_tensors(outliers)
        if tuple(pool.shape[1:]) != tuple(dataset.data.shape[1:]):
            raise ValueError(
                f"outliers: foreign samples have shape {tuple(pool.shape[1:])} but the dataset's "
                f"samples have shape {tuple(dataset.data.shape[1:])}"
            )
        if n_out and pool.shape[0] == 0:
            raise ValueError("outliers: the pool of foreign samples is empty")

    rng = np.random.default_rng(seed)
    chosen = rng.permutation(n)
    is_outlier, is_flipped = np.zeros(n, bool), np.zeros(n, bool)
    out_idx, flip_idx = np.sort(chosen[:n_out]), np.sort(chosen[n_out : n_out + n_flip])
    is_outlier[out_idx], is_flipped[flip_idx] = True, True

    true_labels = dataset.labels.copy()
    labels = true_labels.copy()
    if n_flip:  # a uniformly random *other* present class
        position = np.searchsorted(present, true_labels[flip_idx])  # (n_flip,) index of the true class
        step = rng.integers(1, len(present), size=n_flip)
        labels[flip_idx] = present[(position + step) % len(present)]

    data = dataset.data.clone()
    source, source_class = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    if n_out:
        index = torch.from_numpy(out_idx)
        if pool is not None:
            take = rng.choice(pool.shape[0], size=n_out, replace=n_out > pool.shape[0])
            data[index] = _match_dtype(pool[torch.from_numpy(take)], data)
            source[out_idx], source_class[out_idx] = take, pool_labels[take]
        elif outliers == "shuffle":
            flat = data[index].reshape(n_out, -1)  # (n_out, P)
            perm = torch.from_numpy(np.argsort(rng.random(flat.shape), axis=1))  # one permutation per row
            data[index] = flat.gather(1, perm).reshape(data[index].shape)
        else:  # uniform noise over the dataset's value range
            lo, hi = float(dataset.data.min()), float(dataset.data.max())
            noise = torch.from_numpy(rng.uniform(lo, hi, size=(n_out, *data.shape[1:])))
            data[index] = (
                noise.round().to(data.dtype) if not data.is_floating_point() else noise.to(data.dtype)
            )

    out = dataset.subset(np.arange(n))
    out.data, out.labels = data, labels.astype(np.int64)
    out.meta = {
        **dataset.meta,
        "true_labels": true_labels,
        "is_outlier": is_outlier,
        "is_flipped": is_flipped,
        "outlier_source": source,
        "outlier_class": source_class,
    }
    return out


def corrupted_mask(dataset: DMLDataset) -> np.ndarray:
    """``is_outlier | is_flipped`` of a dataset made by :func:`corrupt` (or by the synthetic generators)."""
    missing = [k for k in ("is_outlier", "is_flipped") if k not in dataset.meta]
    if missing:
        raise KeyError(f"dataset.meta has no {missing}: it was not made by corrupt() or make_blobs()")
    return np.asarray(dataset.meta["is_outlier"], bool) | np.asarray(dataset.meta["is_flipped"], bool)


__all__ = ["CORRUPTION_KEYS", "OUTLIER_KINDS", "corrupt", "corrupted_mask"]

"""Retrieval and clustering metrics for embeddings: Recall@K, R-Precision, MAP@R and NMI.

Protocol
--------
:func:`evaluate` is the standard deep-metric-learning protocol: every sample is a query and the *rest* of the
set is its gallery (leave-one-out; a query never retrieves itself). :func:`evaluate_query_gallery` is the
split form (In-Shop style), where queries and gallery are disjoint sets. By default embeddings are
L2-normalised and neighbours are ranked by Euclidean distance, which on the unit sphere is the
cosine-similarity ranking.

Definitions, for one query q: ``rel(i)`` is 1 if the i-th nearest neighbour has q's label, else 0; ``R_q`` is
the number of gallery samples with q's label, not counting q itself; ``P(i)`` is the precision among the first
i neighbours.

* ``recall@K``    = 1 if ``rel(i) = 1`` for some ``i <= K`` else 0. This is the DML "Recall@K" (a hit in the
  top K), not the information-retrieval recall. ``recall@1`` equals PML's ``precision_at_1``.
* ``r_precision`` = (1/R_q) * sum_{i <= R_q} rel(i).
* ``map@r``       = (1/R_q) * sum_{i <= R_q} P(i) * rel(i): mean average precision at R, from Musgrave,
  Belongie and Lim, "A Metric Learning Reality Check", ECCV 2020. It rewards a space where the whole class is
  ranked first, not only the nearest neighbour.
* ``nmi``         = normalised mutual information (arithmetic normalisation) between the labels and a k-means
  clustering with k = number of classes (scikit-learn ``KMeans`` + ``normalized_mutual_info_score``).

Every metric is the mean over queries. **Lone queries** (``R_q = 0``: a class with a single sample, or in the
split form a query class absent from the gallery) are left out of the k-NN metrics, with a warning, exactly as
pytorch-metric-learning's ``AccuracyCalculator`` does; NMI still uses every sample. If every query is lone, a
``ValueError`` is raised (PML returns ``nan``).

The exact neighbour search behind these metrics (backends, chunking, tie order) is
:func:`dmlbook.evaluation.neighbours.knn`.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dmlbook._checks import check_choice, check_labels

from .neighbours import (
    BACKENDS,
    DEFAULT_CHUNK_BYTES,
    _as_embeddings,
    _check_chunk_bytes,
    _check_k,
    _knn,
    _pair,
)

__all__ = ["count_relevant", "evaluate", "evaluate_query_gallery", "kmeans_nmi", "retrieval_metrics"]


# ----------------------------------------------------------------------------------------------- validation
def _check_ks(ks: Any) -> tuple[int, ...]:
    """A non-empty collection of positive ints -> sorted, de-duplicated tuple."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise TypeError(f"ks must be a sequence of positive ints such as (1, 2, 4, 8); got {ks!r}")
    ks = tuple(ks)
    if any(isinstance(k, bool) or not isinstance(k, numbers.Integral) for k in ks):
        raise TypeError(f"ks must contain ints; got {ks!r}")
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of positive ints; got {ks!r}")
    return tuple(sorted({int(k) for k in ks}))


def _check_several_classes(labels: Tensor, name: str, why: str) -> None:
    if torch.unique(labels).numel() < 2:
        raise ValueError(f"{name} has a single class; {why} needs at least 2 classes")


def _check_not_all_lone(num_relevant: Tensor) -> None:
    if not bool((num_relevant > 0).any()):
        raise ValueError(
            "every query is lone (no other gallery sample shares its label), so k-NN metrics are undefined"
        )


# ---------------------------------------------------------------------------------------------- metrics
def count_relevant(query_labels: Tensor, gallery_labels: Tensor, *, exclude_self: bool = False) -> Tensor:
    """R_q: how many gallery samples share each query's label ((Q,) int64; minus 1 with ``exclude_self``)."""
    gallery_labels = check_labels(gallery_labels, len(gallery_labels), "gallery_labels")
    query_labels = check_labels(query_labels, len(query_labels), "query_labels", device=gallery_labels.device)
    n_gallery = gallery_labels.shape[0]
    _, inverse = torch.unique(
        torch.cat([gallery_labels, query_labels.to(gallery_labels)]), return_inverse=True
    )
    counts = torch.bincount(inverse[:n_gallery], minlength=int(inverse.max()) + 1)  # (num_labels,)
    return counts[inverse[n_gallery:]] - int(exclude_self)  # (Q,)


def retrieval_metrics(
    neighbour_labels: Tensor,
    query_labels: Tensor,
    num_relevant: Tensor,
    ks: Iterable[int] = (1, 2, 4, 8),
) -> dict[str, float]:
    """Recall@K, MAP@R and R-Precision from the labels of each query's ranked neighbours.

    Args:
        neighbour_labels: (Q, K) labels of each query's K nearest neighbours, nearest first.
        query_labels: (Q,) labels of the queries.
        num_relevant: (Q,) R_q, the number of gallery samples sharing the query's label (see
            :func:`count_relevant`). Queries with R_q = 0 are lone and are left out, with a warning.
        ks: the K of each ``recall@K``; all must be <= K, and so must every R_q (else MAP@R would be
            truncated).

    Returns:
        ``{"recall@k": ..., "map@r": ..., "r_precision": ...}`` as Python floats in [0, 1] (definitions in the
        module docstring; MAP@R from Musgrave et al., "A Metric Learning Reality Check", ECCV 2020).
    """
    ks = _check_ks(ks)
    if neighbour_labels.dim() != 2:
        raise ValueError(
            f"neighbour_labels must be 2-D (queries, K); got shape {tuple(neighbour_labels.shape)}"
        )
    n_query, n_neighbours = neighbour_labels.shape
    query_labels = check_labels(query_labels, n_query, "query_labels", device=neighbour_labels.device)
    num_relevant = check_labels(num_relevant, n_query, "num_relevant", device=neighbour_labels.device)
    _check_not_all_lone(num_relevant)
    lone = num_relevant <= 0  # (Q,)
    if bool(lone.any()):
        warnings.warn(
            f"{int(lone.sum())} of {n_query} queries are lone (no other gallery sample has their label) "
            "and are left out of recall@k, map@r and r_precision, as in pytorch-metric-learning",
            stacklevel=2,
        )
    hits = neighbour_labels[~lone] == query_labels[~lone].unsqueeze(1)  # (Q', K) rel(i)
    r = num_relevant[~lone]  # (Q',)
    needed = max(ks[-1], int(r.max()))
    if needed > n_neighbours:
        raise ValueError(
            f"neighbour_labels has {n_neighbours} columns but max(ks) / the largest R_q need {needed}"
        )
    return {**_recall_at(hits, ks), **_map_at_r_and_r_precision(hits, r)}


def _recall_at(hits: Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    found = hits.any(1)  # (Q,)
    first_hit = torch.where(found, hits.int().argmax(1), hits.shape[1])  # (Q,) 0-based rank of first hit
    return {f"recall@{k}": (first_hit < k).double().mean().item() for k in ks}


def _map_at_r_and_r_precision(hits: Tensor, r: Tensor) -> dict[str, float]:
    ranks = torch.arange(1, hits.shape[1] + 1, device=hits.device)  # (K,) i
    rel = hits & (ranks.unsqueeze(0) <= r.unsqueeze(1))  # (Q, K) rel(i) for i <= R_q
    precision = hits.cumsum(1, dtype=torch.float64) / ranks  # (Q, K) P(i)
    map_at_r = (precision * rel).sum(1) / r  # (Q,)
    r_precision = rel.sum(1, dtype=torch.float64) / r  # (Q,)
    return {"map@r": map_at_r.mean().item(), "r_precision": r_precision.mean().item()}


def _import_sklearn() -> tuple[Any, Any]:
    try:
        from sklearn.cluster import KMeans
        from sklearn.metrics import normalized_mutual_info_score
    except ImportError as err:
        raise ImportError("NMI needs scikit-learn: pip install dmlbook[train] (or pass nmi=False)") from err
    return KMeans, normalized_mutual_info_score


@torch.no_grad()
def kmeans_nmi(embeddings: Tensor | np.ndarray, labels: Any, *, seed: int = 0, n_init: int = 3) -> float:
    """NMI between ``labels`` and k-means clusters of ``embeddings`` (k = number of classes, seeded).

    Uses scikit-learn's ``KMeans(n_clusters=k, n_init=n_init, random_state=seed)`` and
    ``normalized_mutual_info_score`` (arithmetic normalisation, as in PML). Embeddings are clustered as given
    (normalise them first if that is what you evaluate). Cost grows with N x k: slow on SOP (11k classes).
    """
    kmeans_cls, nmi_score = _import_sklearn()
    x = _as_embeddings(embeddings, "embeddings", min_samples=2)
    y = check_labels(labels, x.shape[0])
    _check_several_classes(y, "labels", "NMI")
    y_np = y.cpu().numpy()
    n_clusters = int(np.unique(y_np).size)
    kmeans = kmeans_cls(n_clusters=n_clusters, n_init=n_init, random_state=seed)
    clusters = kmeans.fit_predict(x.cpu().numpy())
    return float(min(max(nmi_score(y_np, clusters), 0.0), 1.0))


# ------------------------------------------------------------------------------------------- evaluation
def _evaluate(
    query: Tensor,
    query_labels: Tensor,
    gallery: Tensor,
    gallery_labels: Tensor,
    ks: tuple[int, ...],
    *,
    exclude_self: bool,
    normalize: bool,
    nmi: bool,
    seed: int,
    backend: str,
    chunk_bytes: int,
    kmeans_n_init: int,
) -> dict[str, float]:
    check_choice(backend, BACKENDS, "backend")
    _check_several_classes(gallery_labels, "labels" if exclude_self else "gallery_labels", "retrieval")
    if nmi:  # fail before the k-NN search, not after it
        _check_several_classes(query_labels, "labels" if exclude_self else "query_labels", "NMI")
    if normalize:
        query = F.normalize(query, dim=1)  # (Q, D)
        gallery = query if exclude_self else F.normalize(gallery, dim=1)  # (G, D)
    r = count_relevant(query_labels, gallery_labels, exclude_self=exclude_self)  # (Q,)
    _check_not_all_lone(r)
    k = _check_k(max(ks[-1], int(r.max())), gallery.shape[0], exclude_self)
    _, idx = _knn(query, gallery, k, exclude_self=exclude_self, backend=backend, chunk_bytes=chunk_bytes)
    out = retrieval_metrics(gallery_labels[idx], query_labels, r, ks)  # idx: (Q, k)
    if nmi:
        out["nmi"] = kmeans_nmi(query, query_labels, seed=seed, n_init=kmeans_n_init)
    return out


@torch.no_grad()
def evaluate(
    embeddings: Tensor | np.ndarray,
    labels: Any,
    ks: Iterable[int] = (1, 2, 4, 8),
    *,
    normalize: bool = True,
    nmi: bool = True,
    seed: int = 0,
    backend: str = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    kmeans_n_init: int = 3,
) -> dict[str, float]:
    """Leave-one-out retrieval metrics and NMI of an embedded evaluation set (the standard DML protocol).

    Each sample queries all the *other* samples. With ``normalize`` (default) embeddings are L2-normalised and
    ranked by Euclidean distance (= cosine ranking), matching PML's ``AccuracyCalculator`` with
    ``k="max_bin_count"`` and ``LpDistance(normalize_embeddings=True)``.

    Args:
        embeddings: (N, D) float32/float64 tensor (CPU or CUDA) or numpy array.
        labels: (N,) integer class labels (tensor, array or list).
        ks: the K of each ``recall@K``; each must be <= N - 1.
        normalize: L2-normalise the embeddings first.
        nmi: also compute NMI (k-means; the slow part on large sets).
        seed: k-means seed.
        backend: k-NN backend, see :func:`knn`.
        chunk_bytes: memory budget of one block of the distance matrix (torch backend).
        kmeans_n_init: k-means restarts.

    Returns:
        ``{"recall@1": ..., ..., "map@r": ..., "r_precision": ..., "nmi": ...}`` (``nmi`` only if
        requested), as Python floats in [0, 1]. Definitions and lone queries: see the module docstring.
    """
    x = _as_embeddings(embeddings, "embeddings", min_samples=2)
    y = check_labels(labels, x.shape[0], device=x.device)
    ks = _check_ks(ks)
    return _evaluate(
        x,
        y,
        x,
        y,
        ks,
        exclude_self=True,
        normalize=normalize,
        nmi=nmi,
        seed=seed,
        backend=backend,
        chunk_bytes=_check_chunk_bytes(chunk_bytes),
        kmeans_n_init=kmeans_n_init,
    )


@torch.no_grad()
def evaluate_query_gallery(
    query: Tensor | np.ndarray,
    query_labels: Any,
    gallery: Tensor | np.ndarray,
    gallery_labels: Any,
    ks: Iterable[int] = (1, 2, 4, 8),
    *,
    normalize: bool = True,
    nmi: bool = True,
    seed: int = 0,
    backend: str = "auto",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    kmeans_n_init: int = 3,
) -> dict[str, float]:
    """Retrieval metrics of ``query`` against a separate ``gallery`` (e.g. In-Shop); queries are not in it.

    R_q is the number of gallery samples with the query's label; queries whose class is absent from the
    gallery are lone and left out of the k-NN metrics (PML's ``get_accuracy(query, ..., reference, ...,
    ref_includes_query=False)``). NMI, if requested, clusters the query embeddings only (as PML does).
    Arguments and return value are as in :func:`evaluate`; each K must be <= the gallery size.
    """
    q = _as_embeddings(query, "query", min_samples=1)
    g = _as_embeddings(gallery, "gallery", min_samples=1)
    q, g = _pair(q, g)
    ql = check_labels(query_labels, q.shape[0], "query_labels", device=q.device)
    gl = check_labels(gallery_labels, g.shape[0], "gallery_labels", device=g.device)
    ks = _check_ks(ks)
    return _evaluate(
        q,
        ql,
        g,
        gl,
        ks,
        exclude_self=False,
        normalize=normalize,
        nmi=nmi,
        seed=seed,
        backend=backend,
        chunk_bytes=_check_chunk_bytes(chunk_bytes),
        kmeans_n_init=kmeans_n_init,
    )

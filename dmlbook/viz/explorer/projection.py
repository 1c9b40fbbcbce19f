"""The explorer's 2-D maps: PCA, UMAP, orthogonal Procrustes alignment, and a cache of computed projections.

A snapshot's map is computed once: :func:`cached_projection` keeps the last projections in a small LRU cache
keyed by the *content* of the data (a hash), the seed, the initial layout and the UMAP arguments, so explorers
built on the same embeddings share them.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["ALIGNMENTS", "PROJECTIONS", "cached_projection", "pca_2d", "procrustes_align", "umap_2d"]

PROJECTIONS: tuple[str, ...] = ("umap", "pca")
ALIGNMENTS: tuple[str, ...] = ("procrustes", "umap_init", "none")
_CACHE_SIZE = 32  # projections kept in the module-level cache


def procrustes_align(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate (or reflect), scale and translate ``moving`` onto ``target``.

    Both are (N, 2) coordinates of the same N points; returns the transformed ``moving``. The rotation is the
    least-squares (orthogonal Procrustes) one, the translation matches the centroids and the scale matches the
    spread (root-mean-square distance to the centroid). This is what keeps the explorer's frames steady: a new
    snapshot's map is only turned, mirrored, moved and resized to match the previous one, never deformed.
    """
    moving = np.asarray(moving, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if moving.shape != target.shape or moving.ndim != 2:
        raise ValueError(
            f"moving and target must have the same (N, 2) shape; got {moving.shape}, {target.shape}"
        )
    mu_m, mu_t = moving.mean(0), target.mean(0)
    a, b = moving - mu_m, target - mu_t  # (N, 2), (N, 2)
    norm = float((a**2).sum())
    if norm == 0.0 or float((b**2).sum()) == 0.0:
        return moving - mu_m + mu_t
    u, _, vt = np.linalg.svd(a.T @ b)  # (2, 2)
    rotation = u @ vt  # (2, 2), orthogonal: the best rotation or reflection
    # match the spread (RMS radius) rather than the least-squares scale, which shrinks a map towards its
    # centre when consecutive snapshots are only weakly related
    scale = float(np.sqrt((b**2).sum() / norm))
    return scale * a @ rotation + mu_t  # (N, 2)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of ``x`` (N, D) -> (N, 2), signs fixed (largest loading > 0)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(0)  # (N, D)
    cov = centred.T @ centred  # (D, D)
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    comps = vecs[:, ::-1][:, :2]  # (D, <=2)
    signs = np.sign(comps[np.abs(comps).argmax(0), np.arange(comps.shape[1])])
    comps = comps * np.where(signs == 0, 1.0, signs)
    out = centred @ comps  # (N, <=2)
    if out.shape[1] < 2:
        out = np.concatenate([out, np.zeros((out.shape[0], 2 - out.shape[1]))], axis=1)
    return out


def umap_2d(
    x: np.ndarray, *, seed: int = 0, init: np.ndarray | None = None, **umap_kwargs: Any
) -> np.ndarray:
    """A 2-D UMAP of ``x`` (N, D) with the Euclidean metric (``umap-learn``; seeded, so single-threaded).

    ``init`` (N, 2) starts the layout from given coordinates (e.g. the previous snapshot's map).
    """
    try:
        import umap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "projection='umap' needs umap-learn: pip install 'dmlbook[viz]' (or use projection='pca')"
        ) from err
    n = x.shape[0]
    params: dict[str, Any] = {
        "n_neighbors": max(2, min(15, n - 1)),
        "min_dist": 0.1,
        "metric": "euclidean",
        "random_state": seed,
    }
    params.update(umap_kwargs)
    params["n_components"] = 2
    if init is not None:
        params["init"] = np.asarray(init, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init fallbacks
        return np.asarray(
            umap.UMAP(**params).fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64
        )


_PROJECTION_CACHE: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()


def _digest(x: np.ndarray | None) -> str | None:
    if x is None:
        return None
    x = np.ascontiguousarray(x)
    h = hashlib.blake2b(x.view(np.uint8).ravel(), digest_size=16)
    h.update(repr((x.shape, x.dtype.str)).encode())
    return h.hexdigest()


def cached_projection(
    method: str, x: np.ndarray, *, seed: int, init: np.ndarray | None, umap_kwargs: Mapping[str, Any]
) -> np.ndarray:
    """``umap_2d`` / ``pca_2d`` behind a small LRU cache keyed by the data (content), init, seed, kwargs."""
    key = (method, _digest(x), seed, _digest(init), repr(sorted(umap_kwargs.items())))
    if key in _PROJECTION_CACHE:
        _PROJECTION_CACHE.move_to_end(key)
        return _PROJECTION_CACHE[key]
    out = umap_2d(x, seed=seed, init=init, **umap_kwargs) if method == "umap" else pca_2d(x)
    _PROJECTION_CACHE[key] = out
    while len(_PROJECTION_CACHE) > _CACHE_SIZE:
        _PROJECTION_CACHE.popitem(last=False)
    return out

"""Input checks of :class:`~dmlbook.viz.explorer.EmbeddingExplorer`: snapshots, per-sample arrays, names.

Every check raises a TypeError (wrong kind of object) or a ValueError (wrong shape or value) that names the
argument, as :mod:`dmlbook._checks` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dmlbook._checks import check_embeddings

__all__ = [
    "check_attention",
    "check_coords",
    "check_names",
    "check_outlier",
    "check_snapshot_names",
    "check_snapshots",
    "per_sample",
    "to_numpy",
]


def as_float_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold floating-point numbers; got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind != "f" else x.dtype))
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (N, dim); got {type(x).__name__}"
        )
    return x.detach().cpu()


def check_snapshots(embeddings: Any) -> list[Tensor]:
    """embeddings: (N, D) / (S, N, D) array or tensor, or a list of (N, D) -> list of validated (N, D)."""
    if isinstance(embeddings, (list, tuple)):
        if not embeddings:
            raise ValueError("embeddings is an empty list; give one (N, dim) array per snapshot")
        items = [
            (as_float_tensor(e, f"embeddings[{s}]"), f"embeddings[{s}]") for s, e in enumerate(embeddings)
        ]
    else:
        x = as_float_tensor(embeddings, "embeddings")
        if x.dim() == 3:
            items = [(x[s], f"embeddings[{s}]") for s in range(x.shape[0])]
            if not items:
                raise ValueError("embeddings has shape (0, N, dim); give at least one snapshot")
        else:
            items = [(x, "embeddings")]
    out = []
    for x, name in items:
        if x.dim() != 2:
            raise ValueError(f"{name} must be 2-D (N, dim); got shape {tuple(x.shape)}")
        x = check_embeddings(x if x.is_floating_point() else x.float(), name, min_samples=2)
        if out and x.shape[0] != out[0].shape[0]:
            raise ValueError(
                f"{name} has {x.shape[0]} rows but embeddings[0] has {out[0].shape[0]}; "
                "every snapshot must hold the same samples in the same order"
            )
        out.append(x.to(torch.float32).contiguous())
    return out


def per_sample(values: Any, n: int, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(
            f"{name} must be a sequence or array with one value per sample; got {type(values).__name__}"
        )
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one value per sample; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but embeddings has {n} rows; they must match")
    return arr


def check_attention(attention: Any, n: int, n_snapshots: int) -> np.ndarray:
    """(N,), (S, N) or a list of S (N,) -> float64 (S, N)."""
    if isinstance(attention, (list, tuple)) and attention and hasattr(attention[0], "__len__"):
        rows = [np.asarray(to_numpy(a), dtype=np.float64) for a in attention]
        if any(r.ndim != 1 for r in rows):
            raise ValueError("attention given as a list must hold one 1-D (N,) array per snapshot")
        if len({r.shape[0] for r in rows}) != 1:
            raise ValueError("attention given as a list must hold arrays of the same length N")
        arr = np.stack(rows)
    else:
        try:
            arr = np.asarray(to_numpy(attention), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"attention must hold numbers (one weight per sample): {err}") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"attention must have shape (N,) or (snapshots, N); got {arr.shape}")
    if arr.shape[1] != n:
        raise ValueError(f"attention has {arr.shape[1]} entries per snapshot but embeddings has {n} rows")
    if arr.shape[0] not in (1, n_snapshots):
        raise ValueError(
            f"attention has {arr.shape[0]} snapshots but embeddings has {n_snapshots}; give one (N,) array "
            "for all snapshots or one per snapshot"
        )
    if not np.isfinite(arr).all():
        raise ValueError("attention contains NaN or infinite values")
    return np.repeat(arr, n_snapshots, axis=0) if arr.shape[0] == 1 else arr


def to_numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def check_outlier(outlier: Any, n: int) -> np.ndarray:
    arr = np.asarray(to_numpy(per_sample(outlier, n, "outlier")))
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError("outlier must be a boolean mask (or 0/1 values), one per sample") from None
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError("outlier must be a boolean mask (or 0/1 values), one per sample")
    return arr.astype(bool)


def check_coords(projection: Any, n: int, n_snapshots: int) -> list[np.ndarray]:
    """Given coordinates: (N, 2), (S, N, 2) or a list of S (N, 2) -> list of float64 (N, 2)."""
    if isinstance(projection, (list, tuple)):
        frames = [np.asarray(to_numpy(p), dtype=np.float64) for p in projection]
    else:
        arr = np.asarray(to_numpy(projection), dtype=np.float64)
        frames = list(arr) if arr.ndim == 3 else [arr]
    if len(frames) != n_snapshots:
        raise ValueError(
            f"projection gives coordinates for {len(frames)} snapshots but embeddings has {n_snapshots}"
        )
    for s, frame in enumerate(frames):
        if frame.shape != (n, 2):
            raise ValueError(
                f"projection coordinates must have shape ({n}, 2) per snapshot; got {frame.shape}"
            )
        if not np.isfinite(frame).all():
            raise ValueError(f"projection coordinates (snapshot {s}) contain NaN or infinite values")
    return frames


def check_names(names: Any, classes: np.ndarray) -> dict[int, str]:
    """Class names for the sorted labels ``classes``: None (the label itself), a sequence indexed by label or
    a mapping {label: name}; returns {label: name} for every label."""
    if names is None:
        return {int(c): str(int(c)) for c in classes}
    if isinstance(names, Mapping):
        try:
            lookup = {int(key): str(value) for key, value in names.items()}
        except (TypeError, ValueError):
            raise TypeError(f"names must map int labels to names; got keys {list(names)[:5]}") from None
        missing = [int(c) for c in classes if int(c) not in lookup]
        if missing:
            raise ValueError(f"names has no entry for labels {missing[:10]}; give a name for every label")
        return {int(c): lookup[int(c)] for c in classes}
    if isinstance(names, np.ndarray) and names.ndim == 1:
        names = names.tolist()
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise TypeError(f"names must be a sequence indexed by label or a dict {{label: name}}; got {names!r}")
    lo, hi = int(classes.min()), int(classes.max())
    if lo < 0 or hi >= len(names):
        raise ValueError(
            f"names has {len(names)} entries but labels range over [{lo}, {hi}]; a sequence of names is "
            "indexed by label (use a dict for other labels)"
        )
    return {int(c): str(names[int(c)]) for c in classes}


def check_snapshot_names(snapshot_names: Any, n_snapshots: int) -> list[str]:
    """One name per snapshot (default: "snapshot 0", "snapshot 1", ...)."""
    if snapshot_names is None:
        return [f"snapshot {s}" for s in range(n_snapshots)]
    if isinstance(snapshot_names, (str, bytes)) or not isinstance(snapshot_names, Sequence):
        raise TypeError(f"snapshot_names must be a sequence of strings; got {type(snapshot_names).__name__}")
    if len(snapshot_names) != n_snapshots:
        raise ValueError(
            f"snapshot_names has {len(snapshot_names)} entries but there are {n_snapshots} snapshots"
        )
    return [str(name) for name in snapshot_names]

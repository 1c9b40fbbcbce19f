"""Helpers shared by the folder-based loaders: reading small text tables and .mat annotation files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import require


def read_rows(path: Path, *, skip_header: bool = False) -> list[list[str]]:
    """Whitespace-separated rows of a text file (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        rows = [line.split() for line in f if line.strip()]
    return rows[1:] if skip_header else rows


def read_csv(path: Path) -> dict[str, np.ndarray]:
    """A CSV with a header as ``{column: array of str}``."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no data rows")
    return {key: np.asarray([r[key] for r in rows]) for key in rows[0]}


def load_mat_struct(path: Path, key: str) -> dict[str, np.ndarray]:
    """The fields of a MATLAB struct array (``key``) as ``{field: 1-D array}`` (needs scipy)."""
    sio = require("scipy.io", f"reading {path.name}")
    mat = sio.loadmat(str(path), squeeze_me=True)
    if key not in mat:
        raise ValueError(
            f"{path} has no variable {key!r} (has {sorted(k for k in mat if not k.startswith('__'))})"
        )
    struct = np.atleast_1d(mat[key])
    if struct.dtype.names is None:
        raise ValueError(f"{path}: {key!r} is not a struct array")
    return {name: np.atleast_1d(struct[name]) for name in struct.dtype.names}


def load_mat_strings(path: Path, key: str) -> list[str]:
    """A MATLAB cell array of strings (e.g. ``class_names`` in ``cars_meta.mat``)."""
    sio = require("scipy.io", f"reading {path.name}")
    return [str(v) for v in np.atleast_1d(sio.loadmat(str(path), squeeze_me=True)[key])]


def as_int(values: Any) -> np.ndarray:
    return np.asarray([int(v) for v in np.atleast_1d(values)], dtype=np.int64)

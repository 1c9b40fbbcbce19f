"""``save_metrics``: a notebook's headline numbers in ``out_dir/metrics.json`` (standard library only)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/torch values become Python numbers/lists, mappings and sequences are walked."""
    if hasattr(value, "tolist") and hasattr(value, "ndim"):  # numpy/torch scalars and arrays
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def save_metrics(out_dir: str | os.PathLike[str], **metrics: Any) -> Path:
    """Write ``metrics`` to ``out_dir/metrics.json`` (creating the folder) and return the path.

    Values may be nested dicts/lists of numbers, strings and bools; numpy/torch scalars and arrays are
    converted. The book's summary table shows the first few scalar entries: put the headline numbers first.
    """
    if not metrics:
        raise ValueError(
            "save_metrics needs at least one metric, e.g. save_metrics(out_dir, recall_at_1=0.8)"
        )
    path = Path(out_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(metrics), indent=2, allow_nan=True) + "\n")
    return path

"""Input validation shared by every public function.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape, value or name)
with a message that names the argument and says what was expected, so that bad input never turns into a
silent wrong number or an error from deep inside torch. Nothing here imports the rest of dmlbook.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor


def check_choice(value: Any, choices: Iterable[str], name: str) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError listing them."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer (Python or NumPy, not a bool) >= ``minimum``, returned as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_flag(value: Any, name: str) -> bool:
    """A bool (no truthy stand-ins)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__}")
    return value


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """An image size: a positive int (square) or a ``(height, width)`` pair of positive ints."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if isinstance(h, bool) or not all(isinstance(v, int) and v > 0 for v in (h, w)):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair; got {size!r}")
    return h, w


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not ok or value != value or value == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value}")
    return value


def check_real(value: Any, name: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    if value != value or abs(value) == float("inf"):
        raise ValueError(f"{name} must be finite; got {value}")
    return value


def check_fraction(value: Any, name: str) -> float:
    """A number in [0, 1]."""
    value = check_real(value, name)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value}")
    return value


def check_embeddings(embeddings: Any, name: str = "embeddings", *, min_samples: int = 2) -> Tensor:
    """A finite floating-point (N, D) tensor with N >= ``min_samples`` and D >= 1."""
    if not isinstance(embeddings, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, dim); got {type(embeddings).__name__}")
    if not embeddings.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64); got {embeddings.dtype}")
    if embeddings.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, dim); got shape {tuple(embeddings.shape)}")
    n, d = embeddings.shape
    if n == 0 or d == 0:
        raise ValueError(f"{name} is empty: shape {tuple(embeddings.shape)}")
    if n < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples to form pairs; got {n}")
    # any NaN or inf makes the sum non-finite, so the element-wise check only runs when something is wrong
    if not bool(torch.isfinite(embeddings.sum())) and not bool(torch.isfinite(embeddings).all()):
        bad = int((~torch.isfinite(embeddings)).any(dim=1).sum())
        raise ValueError(f"{name} contains NaN or infinite values (in {bad} of {n} rows)")
    return embeddings


def check_labels(labels: Any, n: int, name: str = "labels", *, device: torch.device | None = None) -> Tensor:
    """A 1-D integer tensor of length ``n`` (lists and numpy arrays are converted)."""
    if not isinstance(labels, Tensor):
        if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, Iterable)) and not hasattr(
            labels, "__array__"
        ):
            raise TypeError(f"{name} must be a 1-D integer tensor; got {type(labels).__name__}")
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a 1-D integer tensor; could not convert: {err}") from None
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name} must have an integer dtype (e.g. torch.int64); got {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must be 1-D with one label per sample; got shape {tuple(labels.shape)}")
    if labels.numel() != n:
        raise ValueError(f"{name} has {labels.numel()} entries but embeddings has {n} rows; they must match")
    if device is not None and labels.device != device:
        labels = labels.to(device)
    return labels


def check_embeddings_labels(embeddings: Any, labels: Any) -> tuple[Tensor, Tensor]:
    """Validate the ``(embeddings, labels)`` pair every loss takes; returns labels on the embeddings' device."""
    embeddings = check_embeddings(embeddings)
    labels = check_labels(labels, embeddings.shape[0], device=embeddings.device)
    return embeddings, labels


def check_logits(logits: Any, n: int, name: str = "logits", *, num_classes: int | None = None) -> Tensor:
    """A finite floating-point (n, C) tensor of class scores."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, num_classes); got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {logits.dtype}")
    if logits.dim() != 2 or logits.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, num_classes) to match the batch; got {tuple(logits.shape)}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"{name} must have {num_classes} columns (num_classes); got {logits.shape[1]}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return logits


def check_class_range(labels: Tensor, num_classes: int, name: str = "labels") -> None:
    """Labels must index ``num_classes`` classes (0 .. num_classes-1)."""
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] for {num_classes} classes; got range [{lo}, {hi}]")

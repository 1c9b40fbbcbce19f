"""Input validation shared by every public function.

Each check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape, value or name)
with a message that names the argument and says what was expected, so that bad input never turns into a
silent wrong number or an error from deep inside torch. Nothing here imports the rest of dmlbook.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor


def check_choice(value: Any, choices: Iterable[str], name: str) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError listing them.

    A choice is judged by value alone: anything that is not one of ``choices`` (a misspelt name, ``None``, a
    number) is a ValueError, as for an enumeration.
    """
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}; got {value!r}")
    return value


def check_int(value: Any, name: str, minimum: int | None = 1, *, maximum: int | None = None) -> int:
    """An integer (Python or NumPy, not a bool) in ``[minimum, maximum]``, returned as an int.

    ``minimum=None`` / ``maximum=None``: no bound on that side. Wrong type: TypeError; out of range: ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    value = int(value)
    low_ok = minimum is None or value >= minimum
    high_ok = maximum is None or value <= maximum
    if not (low_ok and high_ok):
        if maximum is None:
            bound = f">= {minimum}"
        elif minimum is None:
            bound = f"<= {maximum}"
        else:
            bound = f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> float:
    """A finite real number (int, float or NumPy scalar, not a bool) in a range, returned as a float.

    ``minimum`` / ``maximum`` bound it (None: unbounded); ``exclusive_minimum`` makes the lower bound strict.
    Wrong type: TypeError; NaN, infinite or out of range: ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    value = float(value)
    finite = math.isfinite(value)
    if minimum is None and maximum is None:
        if not finite:
            raise ValueError(f"{name} must be finite; got {value}")
        return value
    low_ok = minimum is None or (value > minimum if exclusive_minimum else value >= minimum)
    high_ok = maximum is None or value <= maximum
    if not (finite and low_ok and high_ok):
        if maximum is None:
            bound = f"a finite number {'>' if exclusive_minimum else '>='} {minimum:g}"
        elif minimum is None:
            bound = f"a finite number <= {maximum:g}"
        else:
            bound = f"in {'(' if exclusive_minimum else '['}{minimum:g}, {maximum:g}]"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """A bool (no truthy stand-ins such as 0/1 or "yes")."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {type(value).__name__}")
    return value


def check_optional_flag(value: Any, name: str) -> bool | None:
    """True, False or None (e.g. "decide later"); anything else is a TypeError."""
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None; got {value!r}")
    return value


def check_size(size: Any, name: str = "size") -> tuple[int, int]:
    """An image size: a positive int (square) or a ``(height, width)`` pair of positive ints.

    Not an int or a pair of ints: TypeError; a side < 1: ValueError.
    """
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        pair: tuple[Any, ...] = (size, size)
    elif isinstance(size, Sequence) and not isinstance(size, (str, bytes)):
        pair = tuple(size)
    else:
        raise TypeError(f"{name} must be a positive int or a (height, width) pair; got {type(size).__name__}")
    if len(pair) != 2:
        raise ValueError(f"{name} must be a positive int or a (height, width) pair; got {len(pair)} values")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pair):
        raise TypeError(f"{name} must be a positive int or a (height, width) pair of ints; got {size!r}")
    if any(v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair; got {size!r}")
    return int(pair[0]), int(pair[1])


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    return check_float(value, name, minimum=0.0, exclusive_minimum=not allow_zero)


def check_real(value: Any, name: str) -> float:
    """A finite real number."""
    return check_float(value, name)


def check_fraction(value: Any, name: str) -> float:
    """A number in [0, 1]."""
    return check_float(value, name, minimum=0.0, maximum=1.0)


def check_embeddings(embeddings: Any, name: str = "embeddings", *, min_samples: int = 2) -> Tensor:
    """A finite floating-point (N, D) tensor with N >= ``min_samples`` and D >= 1."""
    if not isinstance(embeddings, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, dim); got {type(embeddings).__name__}"
        )
    if not embeddings.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64); got {embeddings.dtype}"
        )
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
        if (
            isinstance(labels, (str, bytes))
            or not isinstance(labels, (Sequence, Iterable))
            and not hasattr(labels, "__array__")
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
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, num_classes); got {type(logits).__name__}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {logits.dtype}")
    if logits.dim() != 2 or logits.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n}, num_classes) to match the batch; got {tuple(logits.shape)}"
        )
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(f"{name} must have {num_classes} columns (num_classes); got {logits.shape[1]}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return logits


def check_class_range(labels: Tensor, num_classes: int, name: str = "labels") -> None:
    """Labels must index ``num_classes`` classes (0 .. num_classes-1)."""
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{name} must lie in [0, {num_classes - 1}] for {num_classes} classes; got range [{lo}, {hi}]"
        )

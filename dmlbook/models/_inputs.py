"""Argument and input checks shared by the models (same error style as :mod:`dmlbook._checks`)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from .._checks import check_flag, check_float, check_fraction, check_int


def positive_int(value: object, name: str) -> int:
    """An int >= 1 (bools are refused)."""
    return check_int(value, name, 1)


flag = check_flag  # a bool


def dropout_rate(value: object, name: str = "dropout") -> float:
    """A dropout probability in [0, 1) (1 would zero every input)."""
    rate = check_fraction(value, name)
    if rate == 1.0:
        raise ValueError(f"{name} must be < 1; got 1.0 (it would zero every input)")
    return rate


def real(value: object, name: str) -> float:
    """A finite real number (ints and floats; bools are refused)."""
    return check_float(value, name)


def stage_indices(value: object, num_stages: int, name: str) -> tuple[int, ...]:
    """A sorted tuple of distinct stage indices in [0, num_stages)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name} must be a tuple of stage indices in [0, {num_stages - 1}]; got {type(value).__name__}"
        )
    stages = tuple(value)
    for s in stages:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"{name} must hold int stage indices in [0, {num_stages - 1}]; got {stages}")
        if not 0 <= s < num_stages:
            raise ValueError(f"{name} must hold stage indices in [0, {num_stages - 1}]; got {stages}")
    if len(set(stages)) != len(stages):
        raise ValueError(f"{name} has repeated stages: {stages}")
    return tuple(sorted(stages))


def check_features(x: object, in_dim: int, name: str = "x") -> Tensor:
    """A floating-point (B, in_dim) tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, {in_dim}); got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ValueError(
            f"{name} must have shape (batch, {in_dim}) to match in_dim={in_dim}; got {tuple(x.shape)}"
        )
    return x


def check_images(x: object, in_channels: int, *, min_size: int = 1, name: str = "x") -> Tensor:
    """A floating-point (B, in_channels, H, W) tensor with H, W >= ``min_size``."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, {in_channels}, height, width); "
            f"got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (convert images with .float()); got {x.dtype}"
        )
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f"{name} must have shape (batch, {in_channels}, height, width) to match "
            f"in_channels={in_channels}; got {tuple(x.shape)}"
        )
    if min(x.shape[2], x.shape[3]) < min_size:
        raise ValueError(
            f"{name} images must be at least {min_size}x{min_size} pixels for this model; "
            f"got {x.shape[2]}x{x.shape[3]}"
        )
    return x

"""Test-data helpers shared by several test modules (on the path through ``pythonpath = ["tests"]``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def clustered_batch(
    p: int = 4, k: int = 4, dim: int = 8, spread: float = 0.3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``p`` classes x ``k`` samples: a standard-normal centre per class plus ``spread`` x standard-normal noise
    (one seeded generator: centres first, then the noise), labels ``0 .. p - 1`` in blocks of ``k``."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(p, dim, generator=g)  # (p, dim)
    labels = torch.arange(p).repeat_interleave(k)  # (p * k,)
    return centres[labels] + spread * torch.randn(p * k, dim, generator=g), labels  # (p * k, dim), (p * k,)


def write_image_folder(
    root: Path,
    image: Callable[[int, int], np.ndarray],
    *,
    classes: int,
    per_class: int,
    suffix: str = ".jpg",
) -> Path:
    """A folder-per-class tree ``root/images/class{k}/{j}{suffix}`` holding ``image(k, j)`` (an (H, W, 3)
    ``uint8`` array), written class by class, so a seeded ``image`` draws in the same order every time."""
    from PIL import Image

    for k in range(classes):
        folder = root / "images" / f"class{k}"
        folder.mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(image(k, j)).save(folder / f"{j}{suffix}")
    return root


def noisy_grey(rng: np.random.Generator, level: float, noise: float, size: tuple[int, int]) -> np.ndarray:
    """An (H, W, 3) ``uint8`` image: ``level`` plus Gaussian noise of deviation ``noise``, clipped to 0 .. 255."""
    return np.clip(rng.normal(level, noise, size=(*size, 3)), 0, 255).astype(np.uint8)


def assert_damaged_image_is_named(name: str, root: Path, bad: Path, *, not_a_flag: object) -> None:
    """``bad``, an already damaged image file of dataset ``name`` under ``root``: building the dataset names it
    (with the count of unreadable files), ``check_files=False`` skips that check but decoding it still names it,
    and ``check_files=not_a_flag`` is a TypeError."""
    import pytest

    from dmlbook.data import DamagedFileError, load_dataset

    n = len(load_dataset(name, root=root, split="all", check_files=False))
    with pytest.raises(
        DamagedFileError, match=rf"{name}: 1 of {n} image files cannot be read: {bad} "
    ) as info:
        load_dataset(name, root=root, split="train")
    assert info.value.path == bad
    ds = load_dataset(name, root=root, split="all", check_files=False)  # the check can be skipped
    with pytest.raises(DamagedFileError, match=rf"{bad}: cannot decode the image"):  # decoding still names it
        ds[list(ds.paths).index(str(bad))]
    with pytest.raises(TypeError, match="check_files must be True or False"):
        load_dataset(name, root=root, check_files=not_a_flag)

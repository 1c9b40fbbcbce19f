"""Colours of the explorer's map: the colour modes, fixed colours for outliers and neighbours, categorical
palettes and plotly's discrete colour scales."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dmlbook.viz.style import PALETTE

__all__ = [
    "ATTENTION_SCALE",
    "COLOR_BY",
    "INLIER_COLOUR",
    "OTHER_CLASS_COLOUR",
    "OUTLIER_COLOUR",
    "SAME_CLASS_COLOUR",
    "ColourSpec",
    "categorical_colours",
    "discrete_colorscale",
]

COLOR_BY: tuple[str, ...] = ("class", "attention", "outlier", "split")
INLIER_COLOUR = "#b8b8b8"
OUTLIER_COLOUR = "#d55e00"
SAME_CLASS_COLOUR = "#029e73"
OTHER_CLASS_COLOUR = "#d55e00"
ATTENTION_SCALE = "Viridis"  # plotly name; matplotlib's "viridis" is the same map


def categorical_colours(n: int) -> list[str]:
    """``n`` distinct colours: the book's palette for <= 10, evenly spread hues (golden angle) beyond."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    import colorsys

    out = []
    for i in range(n):
        hue = (i * 0.618033988749895) % 1.0
        light = (0.45, 0.6, 0.35)[i % 3]
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.65)
        out.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return out


def discrete_colorscale(colours: Sequence[str]) -> list[list[Any]]:
    """A plotly colorscale with one flat band per category (codes 0..C-1 with cmin=-0.5, cmax=C-0.5)."""
    c = len(colours)
    scale: list[list[Any]] = []
    for i, colour in enumerate(colours):
        scale += [[i / c, colour], [(i + 1) / c, colour]]
    return scale


@dataclass(frozen=True)
class ColourSpec:
    """How one colour mode colours the points: codes or values per sample and the colour map."""

    values: np.ndarray  # (N,) float32: category codes or continuous values
    categorical: bool
    colours: list[str]  # one per category (categorical only)
    categories: list[str]  # category names (categorical only)
    cmin: float
    cmax: float
    title: str

"""Figures for the book: one style (:mod:`dmlbook.viz.style`); matplotlib is imported only when used."""

from __future__ import annotations

from dmlbook.viz.style import METHOD_COLORS, PALETTE, method_color, savefig, setup_notebook

__all__ = ["METHOD_COLORS", "PALETTE", "method_color", "savefig", "setup_notebook"]

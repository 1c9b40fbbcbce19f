"""Figures for the book: one style (:mod:`dmlbook.viz.style`); matplotlib is imported only when used.

:class:`EmbeddingExplorer` (:mod:`dmlbook.viz.explorer`) is the interactive UMAP/PCA map of embeddings;
plotly, ipywidgets and umap-learn are imported only when it is shown.
"""

from __future__ import annotations

from dmlbook.viz.explorer import EmbeddingExplorer
from dmlbook.viz.style import METHOD_COLORS, PALETTE, method_color, savefig, setup_notebook

__all__ = ["METHOD_COLORS", "PALETTE", "EmbeddingExplorer", "method_color", "savefig", "setup_notebook"]

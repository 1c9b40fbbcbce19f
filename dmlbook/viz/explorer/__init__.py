"""An interactive 2-D map of embeddings for JupyterLab: :class:`EmbeddingExplorer`.

The explorer projects embeddings to 2-D (UMAP by default, PCA as a fast fallback, or coordinates you give),
colours the points by class, class-aware attention, injected-outlier flag or split, and shows for a hovered or
clicked sample its image (or a summary of its feature vector), its label and its k nearest neighbours in the
*embedding* space (exact, :func:`dmlbook.evaluation.knn`), marking neighbours of another class. A slider walks
through training snapshots; each snapshot's map is aligned to the previous one (orthogonal Procrustes), so
points do not jump between frames. A class filter hides classes, and a box or lasso selection is listed below
the map.

The package, one module per concern, each importing only the ones above it:

* :mod:`~dmlbook.viz.explorer.projection`: PCA, UMAP, Procrustes alignment and the projection cache;
* :mod:`~dmlbook.viz.explorer.inputs`: the input checks; :mod:`~dmlbook.viz.explorer.colours`: colour modes;
* :mod:`~dmlbook.viz.explorer.state`: the state (maps, neighbours, filter, selection) without any drawing;
* :mod:`~dmlbook.viz.explorer.panels`: the HTML panels of the inspected sample and of the selection;
* :mod:`~dmlbook.viz.explorer.figure`: the plotly ``FigureWidget`` + ipywidgets view;
* :mod:`~dmlbook.viz.explorer.static`: the static matplotlib view and :func:`is_interactive`;
* :mod:`~dmlbook.viz.explorer.widget`: :class:`EmbeddingExplorer`, the state with both views.

The logic (projections, alignment, neighbours, colours, the HTML panels) is plain Python and is tested without
a browser; the widgets are ipywidgets + a plotly ``FigureWidget``. In a non-interactive run (papermill,
``nbconvert --execute``, a script) the explorer renders a static matplotlib figure instead.

numpy and torch are the only imports at module level: plotly, ipywidgets, umap-learn and matplotlib (the
``viz`` extra) are imported when first needed.
"""

from __future__ import annotations

# the constants and the projection cache (``X as X``) stay importable from here, as when the explorer was one
# module; they are not in __all__
from dmlbook.viz.explorer.colours import ATTENTION_SCALE as ATTENTION_SCALE
from dmlbook.viz.explorer.colours import COLOR_BY
from dmlbook.viz.explorer.colours import INLIER_COLOUR as INLIER_COLOUR
from dmlbook.viz.explorer.colours import OTHER_CLASS_COLOUR as OTHER_CLASS_COLOUR
from dmlbook.viz.explorer.colours import OUTLIER_COLOUR as OUTLIER_COLOUR
from dmlbook.viz.explorer.colours import SAME_CLASS_COLOUR as SAME_CLASS_COLOUR
from dmlbook.viz.explorer.figure import WEBGL_ABOVE as WEBGL_ABOVE
from dmlbook.viz.explorer.figure import ExplorerUI
from dmlbook.viz.explorer.projection import _PROJECTION_CACHE as _PROJECTION_CACHE
from dmlbook.viz.explorer.projection import ALIGNMENTS, PROJECTIONS, pca_2d, procrustes_align, umap_2d
from dmlbook.viz.explorer.state import Neighbors
from dmlbook.viz.explorer.static import STATIC_ENV as STATIC_ENV
from dmlbook.viz.explorer.static import is_interactive
from dmlbook.viz.explorer.widget import EmbeddingExplorer

__all__ = [
    "ALIGNMENTS",
    "COLOR_BY",
    "PROJECTIONS",
    "EmbeddingExplorer",
    "ExplorerUI",
    "Neighbors",
    "is_interactive",
    "pca_2d",
    "procrustes_align",
    "umap_2d",
]

"""The static view: a matplotlib figure of the map, shown instead of the widget where no live front end is
(papermill, ``nbconvert --execute``, scripts), and :func:`is_interactive`, which tells the two cases apart."""

from __future__ import annotations

import base64
import io
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dmlbook.viz.explorer.colours import OTHER_CLASS_COLOUR, SAME_CLASS_COLOUR
from dmlbook.viz.explorer.state import ExplorerState

__all__ = ["STATIC_ENV", "StaticView", "is_interactive"]

STATIC_ENV = "DMLBOOK_EXPLORER_STATIC"  # "1": always static, "0": always interactive


def is_interactive() -> bool:
    """True when a live Jupyter front end can show widgets, False under papermill / nbconvert or in a script.

    ``$DMLBOOK_EXPLORER_STATIC`` decides when set ("1": static, "0": interactive). Otherwise: outside an
    IPython *kernel* (plain Python, terminal IPython) -> static; in a kernel whose current execute request
    does not allow stdin -> static, which is how nbclient (papermill, ``nbconvert --execute``, nbmake) runs
    cells, while JupyterLab, Notebook and VS Code allow it.
    """
    env = os.environ.get(STATIC_ENV, "").strip().lower()
    if env in ("1", "true", "yes"):
        return False
    if env in ("0", "false", "no"):
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None) if shell is not None else None
    if kernel is None:
        return False
    return bool(getattr(kernel, "_allow_stdin", True))


class StaticView(ExplorerState):
    """An explorer's map as a matplotlib figure: one panel per snapshot, coloured like the widget."""

    def _static_snapshots(self, snapshots: Any) -> list[int]:
        if snapshots is None:
            if self._s <= 4:
                return list(range(self._s))
            return sorted(set(np.linspace(0, self._s - 1, 4).round().astype(int).tolist()))
        if isinstance(snapshots, numbers.Integral) and not isinstance(snapshots, bool):
            return [self._check_snapshot(int(snapshots))]
        if isinstance(snapshots, (str, bytes)) or not isinstance(snapshots, Sequence) or not snapshots:
            raise TypeError(f"snapshots must be an int or a non-empty sequence of ints; got {snapshots!r}")
        return [self._check_snapshot(s) for s in snapshots]

    def static_figure(
        self,
        *,
        snapshots: int | Sequence[int] | None = None,
        color_by: str | None = None,
        figsize: tuple[float, float] | None = None,
    ) -> Any:
        """A matplotlib Figure of the map: one panel per snapshot, coloured like the widget.

        Args:
            snapshots: which snapshots to draw (default: all when there are at most 4, else 4 evenly spaced
                ones from the first to the last).
            color_by: colour mode (default: the explorer's current one).
            figsize: figure size in inches (default: 4.2 x 4.2 per panel).

        The inspected sample (a star), its neighbours (circles, crosses for another class) and the selection
        (black rings) are drawn too. The figure is not registered with pyplot; display it or save it with
        :func:`dmlbook.viz.savefig`.
        """
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D

        which = self._static_snapshots(snapshots)
        mode = self.color_by if color_by is None else self._check_color_by(color_by)
        n_cols = len(which)
        fig = Figure(figsize=figsize or (4.2 * n_cols + 1.6, 4.4), layout="constrained")
        axes = fig.subplots(1, n_cols, squeeze=False)[0]
        vis = self._visible
        size = float(np.clip(6000.0 / max(len(vis), 1), 1.5, 30.0))
        mappable = None
        spec = self._colour_spec(mode, which[0])
        for ax, s in zip(axes, which):
            xy = self.coords(s)
            spec = self._colour_spec(mode, s)
            if spec.categorical:
                colours = np.array(spec.colours, dtype=object)[spec.values[vis].astype(int)]
                ax.scatter(
                    xy[vis, 0], xy[vis, 1], c=list(colours), s=size, linewidths=0, rasterized=len(vis) > 2000
                )
            else:
                mappable = ax.scatter(
                    xy[vis, 0],
                    xy[vis, 1],
                    c=spec.values[vis],
                    cmap="viridis",
                    vmin=spec.cmin,
                    vmax=spec.cmax,
                    s=size,
                    linewidths=0,
                    rasterized=len(vis) > 2000,
                )
            if self._selected.size:
                sel = self._selected
                ax.scatter(
                    xy[sel, 0], xy[sel, 1], s=size * 3, facecolors="none", edgecolors="black", linewidths=0.8
                )
            if self.current is not None:
                i = self.current
                nb = self.neighbors(i, s)
                for j, same in zip(nb.indices, nb.same_class):
                    ax.plot([xy[i, 0], xy[j, 0]], [xy[i, 1], xy[j, 1]], color="0.35", lw=0.8, alpha=0.6)
                    ax.scatter(
                        xy[j, 0],
                        xy[j, 1],
                        s=70,
                        marker="o" if same else "X",
                        facecolors="none" if same else OTHER_CLASS_COLOUR,
                        edgecolors=SAME_CLASS_COLOUR if same else OTHER_CLASS_COLOUR,
                        linewidths=1.5,
                    )
                ax.scatter(
                    xy[i, 0], xy[i, 1], s=160, marker="*", c="#111111", edgecolors="white", linewidths=0.8
                )
            ax.set_title(self.snapshot_names[s])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal", adjustable="datalim")
            ax.grid(False)
        if spec.categorical and len(spec.categories) <= 20:
            handles = [
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="",
                    markersize=6,
                    markerfacecolor=c,
                    markeredgewidth=0,
                    label=name,
                )
                for c, name in zip(spec.colours, spec.categories)
            ]
            fig.legend(handles=handles, title=spec.title, loc="outside right center", frameon=False)
        elif mappable is not None:
            fig.colorbar(mappable, ax=list(axes), label=spec.title, shrink=0.8)
        what = {"umap": "UMAP", "pca": "PCA", "coords": "map"}[self.projection]
        fig.suptitle(self.title or f"{what} of the embeddings, coloured by {mode}")
        return fig

    def _png_bundle(self) -> dict[str, Any]:
        fig = self.static_figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": repr(self)}

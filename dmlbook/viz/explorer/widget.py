""":class:`EmbeddingExplorer`: the explorer's state with both of its views, the plotly widget and the static
figure, and the choice between them when it is displayed."""

from __future__ import annotations

from typing import Any

from dmlbook.viz.explorer.figure import PlotlyView
from dmlbook.viz.explorer.static import StaticView, is_interactive

__all__ = ["EmbeddingExplorer"]


class EmbeddingExplorer(StaticView, PlotlyView):
    """A 2-D map of embeddings to explore in JupyterLab: colour modes, neighbours, snapshots, selections.

    Args:
        embeddings: one (N, D) tensor or array, or training snapshots: a list of (N, D) (or an (S, N, D)
            array), the same N samples in the same order (D may change).
        labels: (N,) integer class labels.
        images: optional images to show for a sample: an (N, H, W), (N, H, W, C) or (N, C, H, W) array or
            tensor, or a sequence of N images (sizes may differ). uint8, [0, 1] floats, or anything else
            (min-max scaled per image). Without images, the panel shows a summary of the feature vector.
        attention: optional class-aware attention weights, (N,) or one (N,) per snapshot (colour mode
            "attention").
        outlier: optional (N,) boolean mask of injected outliers (colour mode "outlier").
        split: optional (N,) split names or ids such as "train" / "test" (colour mode "split").
        projection: "umap" (default), "pca" (fast, linear) or given coordinates: (N, 2), (S, N, 2) or a list
            of S (N, 2) arrays, used as they are.
        k: neighbours listed for the inspected sample (exact k-NN in the embedding space).
        names: class names, a sequence indexed by label or a mapping {label: name}.
        snapshot_names: one name per snapshot for the slider, e.g. ``[f"epoch {e}" for e in epochs]``.
        color_by: the initial colour mode: "class", "attention", "outlier" or "split".
        align: how snapshot maps are kept steady: "procrustes" (rotate/reflect/scale each map onto the
            previous one), "umap_init" (UMAP starts from the previous map, then Procrustes) or "none".
        normalize: L2-normalise embeddings before the neighbour search and the projection (the cosine
            geometry that the losses use).
        seed: UMAP's random state.
        umap_kwargs: extra ``umap.UMAP`` arguments (e.g. ``{"n_neighbors": 30, "n_epochs": 200}``).
        static: True: always a static matplotlib figure; False: always the widget; None: decide when shown
            (:func:`is_interactive`: static under papermill / nbconvert and in scripts).
        webgl: draw the points with WebGL (plotly ``Scattergl``); None: only above 2,000 points.
        height: height of the map in pixels.
        title: a title above the map.

    The UMAP (or PCA) of each snapshot is computed once and cached (also across explorers on the same data),
    so moving the slider, hovering and clicking only move data that is ready: a widget update takes a few
    milliseconds to a few tens of milliseconds with 10,000 points (``benchmarks/explorer_latency.py``).

    Example::

        from dmlbook.viz import EmbeddingExplorer

        explorer = EmbeddingExplorer(
            [emb_epoch0, emb_epoch5, emb_epoch10],      # (N, D) each, same samples
            labels,                                     # (N,)
            images=images,                              # (N, H, W) or (N, C, H, W)
            attention=[att0, att5, att10],              # optional, (N,) per snapshot
            outlier=is_injected,                        # optional, (N,) bool
            snapshot_names=["epoch 0", "epoch 5", "epoch 10"],
            names=class_names, k=5,
        )
        explorer.show()                       # the widget in JupyterLab, a static figure under papermill
        fig = explorer.static_figure()        # a matplotlib Figure (e.g. for dmlbook.viz.savefig)
        explorer.inspect(42)                  # what a click does: panel for sample 42 and its neighbours
        explorer.neighbors(42).other_class    # neighbours of another class, nearest first

    In the widget: hover or click a point to inspect it (clicking a neighbour marker jumps to it), pick a
    colour mode, restrict the classes (none selected = all), move the snapshot slider (it opens on the last
    snapshot, the trained embedding), and use the box or lasso tool to list a selection. The same actions are
    methods (:meth:`set_snapshot`, :meth:`set_color_by`, :meth:`set_class_filter`, :meth:`inspect`,
    :meth:`select`), which keep the widget in step; the widgets themselves are in :attr:`ui`.
    """

    def _is_static(self) -> bool:
        return self.static if self.static is not None else not is_interactive()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self._is_static():
            return self._png_bundle()
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)

    def show(self) -> None:
        """Display the explorer: the widget in a live front end, else (papermill, scripts) a static figure."""
        from IPython.display import display

        if self._is_static():
            display(self._png_bundle(), raw=True)
        else:
            display(self.widget)

"""The interactive view: a plotly ``FigureWidget`` with ipywidgets controls, kept in step with the state.

plotly and ipywidgets are imported when the widget is first built (:attr:`PlotlyView.ui`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dmlbook.viz.explorer.colours import (
    ATTENTION_SCALE,
    OTHER_CLASS_COLOUR,
    SAME_CLASS_COLOUR,
    discrete_colorscale,
)
from dmlbook.viz.explorer.panels import ExplorerPanels

__all__ = ["WEBGL_ABOVE", "ExplorerUI", "PlotlyView"]

WEBGL_ABOVE = 2000  # points; above this the map uses plotly's WebGL scatter


@dataclass
class ExplorerUI:
    """The widgets of an :class:`EmbeddingExplorer` (built on first use of ``explorer.ui``).

    Attributes:
        root: the ``ipywidgets.VBox`` that is displayed.
        figure: the plotly ``FigureWidget``; trace 0 holds the points, traces 1-3 the neighbour links, the
            neighbours and the inspected sample.
        color_by: ``Dropdown`` of colour modes.
        class_filter: ``SelectMultiple`` of classes (nothing selected = every class).
        snapshot: ``SelectionSlider`` over snapshots (hidden for a single snapshot); its value is the index.
        details: ``HTML`` panel for the inspected sample and its neighbours.
        selection: ``HTML`` panel listing the selected samples.
        clear: ``Button`` that clears the selection.
    """

    root: Any
    figure: Any
    color_by: Any
    class_filter: Any
    snapshot: Any
    details: Any
    selection: Any
    clear: Any


class PlotlyView(ExplorerPanels):
    """The widget of an explorer: the map (trace 0: points; 1-3: neighbour links, neighbours, inspected sample),
    the controls and the two panels. The ``set_*`` methods of the state redraw it through the view hooks."""

    @property
    def ui(self) -> ExplorerUI:
        """The widgets (built, and every snapshot's map computed, on first access)."""
        if self._ui is None:
            self._ui = self._build()
        return self._ui

    @property
    def widget(self) -> Any:
        """The ``ipywidgets`` box to display (``explorer.ui.root``)."""
        return self.ui.root

    def _sync(self, widget: Any, value: Any) -> None:
        """Set a control's value without running its observer (the state already has it)."""
        if widget.value != value:
            self._syncing = True
            try:
                widget.value = value
            finally:
                self._syncing = False

    def _use_webgl(self) -> bool:
        return self.webgl if self.webgl is not None else self._n > WEBGL_ABOVE

    def _axis_ranges(self) -> tuple[list[float], list[float]]:
        allxy = np.concatenate([self.coords(s) for s in range(self._s)])
        lo, hi = allxy.min(0), allxy.max(0)
        pad = 0.05 * np.maximum(hi - lo, 1e-9)
        return [float(lo[0] - pad[0]), float(hi[0] + pad[0])], [float(lo[1] - pad[1]), float(hi[1] + pad[1])]

    def _marker_colour(self) -> dict[str, Any]:
        spec = self._colour_spec(self.color_by, self.snapshot)
        colorbar: dict[str, Any] = {"title": {"text": spec.title}, "thickness": 12, "len": 0.8}
        if spec.categorical:
            scale = discrete_colorscale(spec.colours)
            show = len(spec.categories) <= 20
            colorbar.update(tickvals=list(range(len(spec.categories))), ticktext=spec.categories)
        else:
            scale, show = ATTENTION_SCALE, True
        return {
            "color": spec.values[self._visible],
            "colorscale": scale,
            "cmin": spec.cmin,
            "cmax": spec.cmax,
            "showscale": show,
            "colorbar": colorbar,
        }

    def _point_size(self) -> float:
        return float(np.clip(2400.0 / np.sqrt(max(self._n, 1)) / 6.0, 3.0, 9.0))

    def _build(self) -> ExplorerUI:
        try:
            import ipywidgets as widgets
            import plotly.graph_objects as go
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the interactive explorer needs ipywidgets, plotly and anywidget: pip install 'dmlbook[viz]' "
                "(or use explorer.static_figure())"
            ) from err
        self.precompute()
        xr, yr = self._axis_ranges()
        scatter_cls = go.Scattergl if self._use_webgl() else go.Scatter
        xy = self.coords()[self._visible].astype(np.float32)
        axis_title = {"umap": "UMAP", "pca": "PC", "coords": "dim"}[self.projection]
        fig = go.FigureWidget(
            data=[
                scatter_cls(
                    x=xy[:, 0],
                    y=xy[:, 1],
                    mode="markers",
                    name="samples",
                    marker={"size": self._point_size(), **self._marker_colour(), "line": {"width": 0}},
                    hovertext=self._hover_text[self._visible],
                    hoverinfo="text",
                    selected={"marker": {"opacity": 1.0}},
                    unselected={"marker": {"opacity": 0.25}},
                ),
                go.Scatter(
                    x=[],
                    y=[],
                    mode="lines",
                    name="links",
                    hoverinfo="skip",
                    line={"color": "rgba(60,60,60,0.45)", "width": 1},
                ),
                go.Scatter(
                    x=[],
                    y=[],
                    mode="markers",
                    name="neighbours",
                    hoverinfo="text",
                    marker={"size": 12, "symbol": "circle-open", "line": {"width": 2}},
                ),
                go.Scatter(
                    x=[],
                    y=[],
                    mode="markers",
                    name="inspected",
                    hoverinfo="text",
                    marker={
                        "size": 16,
                        "symbol": "star",
                        "color": "#111111",
                        "line": {"color": "white", "width": 1},
                    },
                ),
            ],
            layout={
                "height": self.height,
                "margin": {"l": 10, "r": 10, "t": 36 if self.title else 10, "b": 10},
                "title": {"text": self.title} if self.title else None,
                "showlegend": False,
                "hovermode": "closest",
                "uirevision": "dmlbook-explorer",
                "xaxis": {
                    "range": xr,
                    "showticklabels": False,
                    "zeroline": False,
                    "title": f"{axis_title} 1",
                },
                "yaxis": {
                    "range": yr,
                    "showticklabels": False,
                    "zeroline": False,
                    "title": f"{axis_title} 2",
                    "scaleanchor": "x",
                    "scaleratio": 1,
                },
                "plot_bgcolor": "white",
                "dragmode": "zoom",
            },
        )
        points, _, nbr_trace, _ = fig.data
        points.on_hover(self._on_hover)
        points.on_click(self._on_click)
        points.on_selection(self._on_selection)
        points.on_deselect(self._on_deselect)
        nbr_trace.on_click(self._on_neighbour_click)

        color_by = widgets.Dropdown(
            options=self._available_color_by(),
            value=self.color_by,
            description="colour by",
            layout=widgets.Layout(width="220px"),
        )
        class_filter = widgets.SelectMultiple(
            options=[(self.class_names[int(c)], int(c)) for c in self.classes],
            value=self.class_filter,
            rows=min(5, len(self.classes)),
            description="classes",
            tooltip="classes to show (none selected = all)",
            layout=widgets.Layout(width="260px"),
        )
        snapshot = widgets.SelectionSlider(
            options=[(name, s) for s, name in enumerate(self.snapshot_names)],
            value=self.snapshot,
            description="snapshot",
            continuous_update=True,
            layout=widgets.Layout(width="360px"),
        )
        if self._s == 1:
            snapshot.layout.display = "none"
        clear = widgets.Button(description="clear selection", layout=widgets.Layout(width="140px"))
        details = widgets.HTML(value=self.details_html())
        details.add_class("dmlbook-explorer-details-box")
        details.layout = widgets.Layout(
            flex="0 0 380px", width="380px", max_height=f"{self.height}px", overflow="auto", padding="0 6px"
        )
        selection = widgets.HTML(value=self.selection_html())
        selection.add_class("dmlbook-explorer-selection-box")
        fig_box = widgets.Box([fig], layout=widgets.Layout(flex="1 1 0%", min_width="0", overflow="hidden"))

        color_by.observe(lambda ch: None if self._syncing else self.set_color_by(ch["new"]), names="value")
        class_filter.observe(
            lambda ch: None if self._syncing else self.set_class_filter(ch["new"]), names="value"
        )
        snapshot.observe(lambda ch: None if self._syncing else self.set_snapshot(ch["new"]), names="value")
        clear.on_click(lambda _: self.clear_selection())

        controls = widgets.HBox([color_by, class_filter, widgets.VBox([snapshot, clear])])
        root = widgets.VBox(
            [controls, widgets.HBox([fig_box, details]), selection], layout=widgets.Layout(width="100%")
        )
        root.add_class("dmlbook-explorer")
        ui = ExplorerUI(root, fig, color_by, class_filter, snapshot, details, selection, clear)
        self._ui = ui
        if self.current is not None:
            self._update_overlay()
        if self._selected.size:
            self._update_points(selection=True)
        return ui

    # ------------------------------------------------------------------------------- widget updates
    def _update_points(
        self, *, positions: bool = False, colours: bool = False, text: bool = False, selection: bool = False
    ) -> None:
        assert self._ui is not None
        fig = self._ui.figure
        points = fig.data[0]
        with fig.batch_update():
            if positions:
                xy = self.coords()[self._visible].astype(np.float32)
                points.x, points.y = xy[:, 0], xy[:, 1]
            if colours:
                marker = self._marker_colour()
                points.marker.update(marker)
            if text:
                points.hovertext = self._hover_text[self._visible]
            if text or selection:
                if self._selected.size:
                    pos = np.flatnonzero(np.isin(self._visible, self._selected))
                    points.selectedpoints = pos.tolist()
                else:
                    points.selectedpoints = None

    def _update_overlay(self) -> None:
        assert self._ui is not None
        fig = self._ui.figure
        _, links, nbr_trace, current = fig.data
        with fig.batch_update():
            if self.current is None:
                for trace in (links, nbr_trace, current):
                    trace.x, trace.y = [], []
                return
            xy = self.coords()
            i = self.current
            nb = self.neighbors(i)
            lx: list[float | None] = []
            ly: list[float | None] = []
            for j in nb.indices:
                lx += [float(xy[i, 0]), float(xy[j, 0]), None]
                ly += [float(xy[i, 1]), float(xy[j, 1]), None]
            links.x, links.y = lx, ly
            nbr_trace.x, nbr_trace.y = xy[nb.indices, 0].tolist(), xy[nb.indices, 1].tolist()
            nbr_trace.hovertext = [
                f"neighbour {r + 1}: #{int(j)} · {self.class_names[int(self.labels[j])]} · d={d:.3f}"
                for r, (j, d) in enumerate(zip(nb.indices, nb.distances))
            ]
            nbr_trace.marker.color = [SAME_CLASS_COLOUR if s else OTHER_CLASS_COLOUR for s in nb.same_class]
            nbr_trace.marker.symbol = ["circle-open" if s else "x-open" for s in nb.same_class]
            current.x, current.y = [float(xy[i, 0])], [float(xy[i, 1])]
            current.hovertext = [f"#{i} · {self.class_names[int(self.labels[i])]} (inspected)"]

    # ----------------------------------------------------------------------------------- callbacks
    def _sample_from_points(self, points: Any) -> int | None:
        inds = list(getattr(points, "point_inds", []) or [])
        if not inds:
            return None
        return int(self._visible[int(inds[0])])

    def _on_hover(self, trace: Any, points: Any, state: Any) -> None:
        i = self._sample_from_points(points)
        if i is not None and i != self.current:
            self.inspect(i, source="hover")

    def _on_click(self, trace: Any, points: Any, state: Any) -> None:
        i = self._sample_from_points(points)
        if i is not None:
            self.inspect(i, source="click")

    def _on_neighbour_click(self, trace: Any, points: Any, state: Any) -> None:
        inds = list(getattr(points, "point_inds", []) or [])
        if inds and self.current is not None:
            self.inspect(int(self.neighbors(self.current).indices[int(inds[0])]), source="click")

    def _on_selection(self, trace: Any, points: Any, selector: Any) -> None:
        inds = np.asarray(list(getattr(points, "point_inds", []) or []), dtype=np.int64)
        self.select(self._visible[inds] if inds.size else [])

    def _on_deselect(self, trace: Any, points: Any) -> None:
        self.clear_selection()

    # ------------------------------------------------------------------------------------ view hooks
    def _snapshot_changed(self) -> None:
        if self._ui is None:
            return
        self._sync(self._ui.snapshot, self.snapshot)
        self._update_points(positions=True, colours=self.color_by == "attention")
        self._update_overlay()
        self._ui.details.value = self.details_html()
        if len(self._selected) and self.attention is not None:
            self._ui.selection.value = self.selection_html()

    def _color_by_changed(self) -> None:
        if self._ui is not None:
            self._sync(self._ui.color_by, self.color_by)
            self._update_points(colours=True)

    def _class_filter_changed(self) -> None:
        if self._ui is not None:
            self._sync(self._ui.class_filter, self.class_filter)
            self._update_points(positions=True, colours=True, text=True)

    def _inspected_changed(self) -> None:
        if self._ui is not None:
            self._update_overlay()
            self._ui.details.value = self.details_html()

    def _selection_changed(self) -> None:
        if self._ui is not None:
            self._ui.selection.value = self.selection_html()
            self._update_points(selection=True)

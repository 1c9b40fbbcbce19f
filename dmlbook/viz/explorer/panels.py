"""The explorer's HTML panels: the inspected sample with its k nearest neighbours, and the selection."""

from __future__ import annotations

import html

import numpy as np

from dmlbook.viz._images import feature_svg, png_data_uri
from dmlbook.viz.explorer.colours import OTHER_CLASS_COLOUR, OUTLIER_COLOUR
from dmlbook.viz.explorer.state import ExplorerState

__all__ = ["ExplorerPanels"]

_TABLE_CSS = (
    "<style>"
    ".dmlbook-explorer-details table,.dmlbook-explorer-selection table"
    "{border-collapse:collapse;font-size:12px}"
    ".dmlbook-explorer-details td,.dmlbook-explorer-details th,.dmlbook-explorer-selection td,"
    ".dmlbook-explorer-selection th{padding:1px 6px;text-align:left;vertical-align:middle}"
    ".dmlbook-nbr.other-class td{color:" + OTHER_CLASS_COLOUR + "}"
    ".dmlbook-explorer img{image-rendering:pixelated}"
    "</style>"
)


class ExplorerPanels(ExplorerState):
    """:class:`~dmlbook.viz.explorer.state.ExplorerState` plus its two HTML panels (the widget shows them; they
    are plain strings, so they are tested without a browser)."""

    def _image_uri(self, index: int) -> str | None:
        if self.images is None:
            return None
        if index not in self._image_cache:
            self._image_cache[index] = png_data_uri(self.images[index])
        return self._image_cache[index]

    def _thumb(self, index: int, size: int) -> str:
        uri = self._image_uri(index)
        if uri is None:
            return ""
        return (
            f'<img src="{uri}" height="{size}" style="height:{size}px;vertical-align:middle" alt="#{index}">'
        )

    def _sample_facts(self, i: int, s: int) -> list[str]:
        facts = []
        if self.split is not None:
            facts.append(f"split <b>{html.escape(self.split[i])}</b>")
        if self.attention is not None:
            facts.append(f"attention <b>{self.attention[s, i]:.3f}</b>")
        if self.outlier is not None:
            facts.append(
                f'<span style="color:{OUTLIER_COLOUR}"><b>injected outlier</b></span>'
                if self.outlier[i]
                else "inlier"
            )
        return facts

    def details_html(self, index: int | None = None, snapshot: int | None = None) -> str:
        """The inspection panel (HTML) for sample ``index`` (default: the inspected one) in a snapshot."""
        s = self._check_snapshot(snapshot)
        i = self.current if index is None else self._check_index(index)
        if i is None:
            return (
                '<div class="dmlbook-explorer-details" data-index="">'
                "<i>Hover over or click a point to see the sample and its nearest neighbours.</i></div>"
            )
        y = int(self.labels[i])
        name = html.escape(self.class_names[y])
        source = self._source
        head = (
            f"<div><b>sample #{i}</b> · class <b>{name}</b> (label {y}) · "
            f'<span class="dmlbook-snapshot">{html.escape(self.snapshot_names[s])}</span>'
            f" <small>({source})</small></div>"
        )
        facts = self._sample_facts(i, s)
        facts_html = f"<div>{' · '.join(facts)}</div>" if facts else ""
        uri = self._image_uri(i)
        if uri is not None:
            visual = f'<img class="dmlbook-sample-image" src="{uri}" width="112" alt="sample #{i}">'
        else:
            vec = self._snapshots[s][i].numpy()
            top = np.argsort(-np.abs(vec))[:3]
            tops = ", ".join(f"{int(d)} ({vec[d]:+.2f})" for d in top)
            visual = (
                f'<div class="dmlbook-feature-summary">{feature_svg(vec)}<br><small>D = {vec.size} · '
                f"‖x‖ = {self._raw_norms[s][i]:.3g} · largest dims: {tops}</small></div>"
            )
        nb = self.neighbors(i, s)
        rows = []
        for rank, (j, d, same) in enumerate(zip(nb.indices, nb.distances, nb.same_class), start=1):
            j, y_j = int(j), int(self.labels[j])
            mark = "✓ same class" if same else "✗ other class"
            rows.append(
                f'<tr class="dmlbook-nbr {"same-class" if same else "other-class"}" data-index="{j}" '
                f'data-label="{y_j}"><td>{rank}</td><td>{self._thumb(j, 28)} #{j}</td>'
                f"<td>{html.escape(self.class_names[y_j])}</td><td>{d:.3f}</td><td>{mark}</td></tr>"
            )
        n_other = int((~nb.same_class).sum())
        metric = "L2-normalised, Euclidean" if self.normalize else "Euclidean"
        table = (
            f"<div><b>{self.k} nearest neighbours</b> in the embedding space ({metric}): "
            f'<span class="dmlbook-nbr-summary">{n_other} of {len(nb.indices)} of another class</span></div>'
            '<table class="dmlbook-neighbours"><tr><th>#</th><th>sample</th><th>class</th><th>distance</th>'
            f"<th></th></tr>{''.join(rows)}</table>"
        )
        return (
            f'{_TABLE_CSS}<div class="dmlbook-explorer-details" data-index="{i}" data-label="{y}" '
            f'data-snapshot="{s}">{head}{facts_html}{visual}{table}</div>'
        )

    def selection_html(self, *, max_rows: int = 25) -> str:
        """The selection panel (HTML): counts per class and the first ``max_rows`` selected samples."""
        sel = self._selected
        if sel.size == 0:
            return (
                '<div class="dmlbook-explorer-selection" data-count="0"><i>No selection: use the box or '
                "lasso tool of the map to select samples.</i></div>"
            )
        labels, counts = np.unique(self.labels[sel], return_counts=True)
        per_class = ", ".join(
            f"{html.escape(self.class_names[int(c)])}: {int(n)}"
            for c, n in sorted(zip(labels, counts), key=lambda t: -t[1])
        )
        extra = []
        if self.outlier is not None:
            extra.append(f"{int(self.outlier[sel].sum())} injected outliers")
        if self.attention is not None:
            extra.append(f"mean attention {self.attention[self.snapshot, sel].mean():.3f}")
        rows = []
        for i in sel[:max_rows]:
            i = int(i)
            cells = [f"{self._thumb(i, 24)} #{i}", html.escape(self.class_names[int(self.labels[i])])]
            cells += self._sample_facts(i, self.snapshot)
            rows.append(f'<tr data-index="{i}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        more = f"<div>… and {sel.size - max_rows} more</div>" if sel.size > max_rows else ""
        return (
            f'{_TABLE_CSS}<div class="dmlbook-explorer-selection" data-count="{sel.size}">'
            f"<b>{sel.size} selected</b> · {per_class}{' · ' + ' · '.join(extra) if extra else ''}"
            f"<table>{''.join(rows)}</table>{more}</div>"
        )

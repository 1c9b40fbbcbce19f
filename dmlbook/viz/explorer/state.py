"""The explorer's state without any drawing: validated inputs, each snapshot's map, exact neighbours, colour
modes, the class filter, the inspected sample and the selection.

:class:`ExplorerState` holds what :class:`~dmlbook.viz.explorer.EmbeddingExplorer` knows and computes; every
change goes through a ``set_*`` / :meth:`~ExplorerState.inspect` / :meth:`~ExplorerState.select` method, which
then calls a view hook (``_snapshot_changed`` ...) that the widget view overrides to redraw.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from dmlbook._checks import check_choice, check_int, check_labels, check_optional_flag
from dmlbook.evaluation import knn
from dmlbook.viz._images import check_images
from dmlbook.viz.explorer.colours import (
    COLOR_BY,
    INLIER_COLOUR,
    OUTLIER_COLOUR,
    ColourSpec,
    categorical_colours,
)
from dmlbook.viz.explorer.inputs import (
    check_attention,
    check_coords,
    check_names,
    check_outlier,
    check_snapshot_names,
    check_snapshots,
    per_sample,
    to_numpy,
)
from dmlbook.viz.explorer.projection import ALIGNMENTS, PROJECTIONS, cached_projection, procrustes_align

__all__ = ["ExplorerState", "Neighbors"]

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass(frozen=True)
class Neighbors:
    """The k nearest neighbours of one sample in one snapshot's embedding space (the sample itself excluded).

    Attributes:
        index: the query sample.
        snapshot: the snapshot whose embeddings were searched.
        indices: (k,) neighbour sample indices, nearest first.
        distances: (k,) Euclidean distances in the embedding space (after L2 normalisation when the
            explorer's ``normalize`` is on).
        labels: (k,) the neighbours' labels.
        same_class: (k,) True where the neighbour has the query's label.
    """

    index: int
    snapshot: int
    indices: np.ndarray
    distances: np.ndarray
    labels: np.ndarray
    same_class: np.ndarray

    @property
    def other_class(self) -> np.ndarray:
        """Indices of the neighbours whose label differs from the query's."""
        return self.indices[~self.same_class]


class ExplorerState:
    """The state and computations of an embedding explorer (arguments: see
    :class:`~dmlbook.viz.explorer.EmbeddingExplorer`)."""

    def __init__(
        self,
        embeddings: Tensor | np.ndarray | Sequence[Tensor | np.ndarray],
        labels: Tensor | np.ndarray | Sequence[int],
        *,
        images: Any = None,
        attention: Tensor | np.ndarray | Sequence[Any] | None = None,
        outlier: Tensor | np.ndarray | Sequence[bool] | None = None,
        split: Sequence[Any] | np.ndarray | None = None,
        projection: str | np.ndarray | Tensor | Sequence[Any] = "umap",
        k: int = 5,
        names: Sequence[str] | Mapping[int, str] | None = None,
        snapshot_names: Sequence[str] | None = None,
        color_by: str = "class",
        align: str = "procrustes",
        normalize: bool = True,
        seed: int = 0,
        umap_kwargs: Mapping[str, Any] | None = None,
        static: bool | None = None,
        webgl: bool | None = None,
        height: int = 520,
        title: str | None = None,
    ) -> None:
        raw = check_snapshots(embeddings)
        n = raw[0].shape[0]
        self._n, self._s = n, len(raw)
        self.labels: np.ndarray = check_labels(labels, n, "labels").cpu().numpy().astype(np.int64)
        self.normalize = bool(normalize)
        self._raw_norms = [x.norm(dim=1).numpy() for x in raw]  # (N,) per snapshot
        self._snapshots = [torch.nn.functional.normalize(x, dim=1) if self.normalize else x for x in raw]
        self.k = check_int(k, "k", 1, maximum=n - 1)

        self.classes: np.ndarray = np.unique(self.labels)  # sorted
        self._class_codes = np.searchsorted(self.classes, self.labels)  # (N,) 0..C-1
        self.class_names: dict[int, str] = check_names(names, self.classes)
        self.snapshot_names: list[str] = check_snapshot_names(snapshot_names, self._s)

        self.images = None if images is None else check_images(images, n, "images")
        self.attention = None if attention is None else check_attention(attention, n, self._s)
        self.outlier = None if outlier is None else check_outlier(outlier, n)
        if split is None:
            self.split = None
        else:
            self.split = np.array([str(v) for v in per_sample(split, n, "split")], dtype=object)
        self._split_names = [] if self.split is None else sorted(set(self.split.tolist()))

        if isinstance(projection, str):
            self.projection = check_choice(projection, PROJECTIONS, "projection")
            self._given: list[np.ndarray] | None = None
        else:
            self.projection = "coords"
            self._given = check_coords(projection, n, self._s)
        self.align = check_choice(align, ALIGNMENTS, "align")
        if self.align == "umap_init" and self.projection != "umap":
            raise ValueError(f"align='umap_init' needs projection='umap'; got projection={self.projection!r}")
        self.seed = check_int(seed, "seed", 0)
        if umap_kwargs is not None and not isinstance(umap_kwargs, Mapping):
            raise TypeError(
                f"umap_kwargs must be a dict of umap.UMAP arguments; got {type(umap_kwargs).__name__}"
            )
        self.umap_kwargs = dict(umap_kwargs or {})
        self.static = check_optional_flag(static, "static")
        self.webgl = check_optional_flag(webgl, "webgl")
        self.height = check_int(height, "height", 200)
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a string or None; got {type(title).__name__}")
        self.title = title

        self.color_by = self._check_color_by(color_by)
        self.snapshot = self._s - 1  # the trained embedding first
        self.current: int | None = None  # the inspected sample
        self._source = "click"  # how it was inspected: "click" or "hover"
        self.class_filter: tuple[int, ...] = ()  # () = every class
        self._selected = np.zeros(0, dtype=np.int64)
        self._coords: dict[int, np.ndarray] = {}
        self._neighbor_cache: OrderedDict[tuple[int, int], Neighbors] = OrderedDict()
        self._image_cache: dict[int, str] = {}
        self._hover_text = np.array(
            [f"#{i} · {self.class_names[int(y)]}" for i, y in enumerate(self.labels)], dtype=object
        )
        self._visible = np.arange(n)
        self._ui: Any = None  # the widgets (figure.ExplorerUI), built on first use
        self._syncing = False  # True while the widget view sets a control to match the state

    # ---------------------------------------------------------------------------------- input checks
    def _available_color_by(self) -> list[str]:
        data = {
            "class": True,
            "attention": self.attention is not None,
            "outlier": self.outlier is not None,
            "split": self.split is not None,
        }
        return [mode for mode in COLOR_BY if data[mode]]

    def _check_color_by(self, color_by: Any) -> str:
        check_choice(color_by, COLOR_BY, "color_by")
        if color_by not in self._available_color_by():
            raise ValueError(
                f"color_by={color_by!r} needs the explorer's {color_by}= argument, which was not given"
            )
        return color_by

    def _check_snapshot(self, snapshot: Any) -> int:
        if snapshot is None:
            return self.snapshot
        return check_int(snapshot, "snapshot", 0, maximum=self._s - 1)

    def _check_index(self, index: Any, name: str = "index") -> int:
        if isinstance(index, np.integer):
            index = int(index)
        return check_int(index, name, 0, maximum=self._n - 1)

    # ------------------------------------------------------------------------------------ properties
    @property
    def n_samples(self) -> int:
        """N, the number of samples."""
        return self._n

    @property
    def n_snapshots(self) -> int:
        """S, the number of snapshots."""
        return self._s

    @property
    def selected(self) -> np.ndarray:
        """Indices of the selected samples (box / lasso selection or :meth:`select`), ascending."""
        return self._selected.copy()

    @property
    def visible(self) -> np.ndarray:
        """Indices of the samples shown under the current class filter, ascending."""
        return self._visible.copy()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_samples={self._n}, n_snapshots={self._s}, classes={len(self.classes)}, "
            f"projection={self.projection!r}, color_by={self.color_by!r}, k={self.k})"
        )

    # ----------------------------------------------------------------------------------- computations
    def coords(self, snapshot: int | None = None) -> np.ndarray:
        """The (N, 2) map of one snapshot (default: the current one), aligned to the previous snapshots.

        Computed once and cached; aligning snapshot s needs the maps of snapshots 0..s-1, which are computed
        (and cached) on the way.
        """
        s = self._check_snapshot(snapshot)
        if s in self._coords:
            return self._coords[s]
        if self._given is not None:
            out = self._given[s]
        else:
            prev = self.coords(s - 1) if s > 0 and self.align != "none" else None
            init = prev if self.align == "umap_init" else None
            x = self._snapshots[s].numpy()
            out = cached_projection(
                self.projection, x, seed=self.seed, init=init, umap_kwargs=self.umap_kwargs
            )
            if prev is not None:
                out = procrustes_align(out, prev)
        self._coords[s] = np.asarray(out, dtype=np.float64)
        return self._coords[s]

    def precompute(self) -> Self:
        """Compute every snapshot's map now (the widget does this when it is built); returns self."""
        for s in range(self._s):
            self.coords(s)
        return self

    def neighbors(self, index: int, snapshot: int | None = None) -> Neighbors:
        """The explorer's k nearest neighbours of sample ``index`` in a snapshot's embedding space (exact)."""
        i = self._check_index(index)
        s = self._check_snapshot(snapshot)
        key = (s, i)
        if key in self._neighbor_cache:
            self._neighbor_cache.move_to_end(key)
            return self._neighbor_cache[key]
        emb = self._snapshots[s]
        threads = torch.get_num_threads()
        torch.set_num_threads(
            1
        )  # one query: thread start-up costs more than it saves, and a busy CPU stalls it
        try:
            dists, idx = knn(emb[i : i + 1], emb, min(self.k + 1, self._n), backend="torch")  # (1, k+1)
        finally:
            torch.set_num_threads(threads)
        d, j = dists[0].numpy().astype(np.float64), idx[0].numpy()
        keep = j != i
        if keep.all():  # i tied with duplicates and fell off the list: drop the farthest instead
            keep[-1] = False
        j, d = j[keep][: self.k], d[keep][: self.k]
        nbrs = Neighbors(
            index=i,
            snapshot=s,
            indices=j,
            distances=d,
            labels=self.labels[j],
            same_class=self.labels[j] == self.labels[i],
        )
        self._neighbor_cache[key] = nbrs
        if len(self._neighbor_cache) > 4096:
            self._neighbor_cache.popitem(last=False)
        return nbrs

    def _colour_spec(self, mode: str, snapshot: int) -> ColourSpec:
        if mode == "class":
            colours = categorical_colours(len(self.classes))
            names = [self.class_names[int(c)] for c in self.classes]
            values = self._class_codes.astype(np.float32)
            return ColourSpec(values, True, colours, names, -0.5, len(colours) - 0.5, "class")
        if mode == "outlier":
            assert self.outlier is not None
            values = self.outlier.astype(np.float32)
            return ColourSpec(
                values, True, [INLIER_COLOUR, OUTLIER_COLOUR], ["inlier", "outlier"], -0.5, 1.5, "outlier"
            )
        if mode == "split":
            assert self.split is not None
            codes = np.searchsorted(np.array(self._split_names, dtype=object), self.split).astype(np.float32)
            colours = categorical_colours(len(self._split_names))
            return ColourSpec(
                codes, True, colours, list(self._split_names), -0.5, len(colours) - 0.5, "split"
            )
        assert self.attention is not None
        lo, hi = float(self.attention.min()), float(self.attention.max())
        if hi <= lo:
            hi = lo + 1e-6
        return ColourSpec(self.attention[snapshot].astype(np.float32), False, [], [], lo, hi, "attention")

    # ------------------------------------------------------------------------------------------ state
    def set_snapshot(self, snapshot: int) -> None:
        """Show snapshot ``snapshot`` (what the slider does)."""
        s = self._check_snapshot(snapshot)
        self.snapshot = s
        self._snapshot_changed()

    def set_color_by(self, color_by: str) -> None:
        """Colour the points by "class", "attention", "outlier" or "split" (what the dropdown does)."""
        self.color_by = self._check_color_by(color_by)
        self._color_by_changed()

    def set_class_filter(self, classes: Sequence[int] | None) -> None:
        """Show only samples of these labels (None or empty: every class), like the class filter widget."""
        if classes is None:
            classes = ()
        if isinstance(classes, (str, bytes)) or not isinstance(
            classes, (Sequence, np.ndarray, set, frozenset)
        ):
            raise TypeError(f"classes must be a sequence of labels; got {type(classes).__name__}")
        wanted = tuple(sorted({int(c) for c in classes}))
        unknown = [c for c in wanted if c not in self.class_names]
        if unknown:
            raise ValueError(f"classes contains labels {unknown[:10]} that are not in labels")
        self.class_filter = wanted
        self._visible = np.flatnonzero(np.isin(self.labels, wanted)) if wanted else np.arange(self._n)
        self._class_filter_changed()

    def inspect(self, index: int | None, *, source: str = "click") -> None:
        """Show sample ``index`` (its image, label and neighbours) in the panel, as a hover or click does.

        ``None`` clears the panel. ``source`` ("click" or "hover") is shown in the panel.
        """
        self.current = None if index is None else self._check_index(index)
        self._source = check_choice(source, ("click", "hover"), "source")
        self._inspected_changed()

    def select(self, indices: Sequence[int] | np.ndarray | None) -> None:
        """Select these samples (what a box or lasso selection does) and list them in the selection panel."""
        if indices is None:
            indices = []
        arr = np.asarray(to_numpy(indices))
        if arr.size and (arr.dtype.kind not in "iu" or arr.ndim != 1):
            raise TypeError(f"indices must be a 1-D sequence of sample indices (ints); got dtype {arr.dtype}")
        arr = np.unique(arr.astype(np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= self._n):
            raise ValueError(f"indices must lie in [0, {self._n - 1}]; got range [{arr[0]}, {arr[-1]}]")
        self._selected = arr
        self._selection_changed()

    def clear_selection(self) -> None:
        """Select nothing."""
        self.select([])

    # ------------------------------------------------------------------------------------ view hooks
    # Called after each change of the state; a view (the plotly widget) overrides them to redraw.
    def _snapshot_changed(self) -> None:
        """The shown snapshot changed."""

    def _color_by_changed(self) -> None:
        """The colour mode changed."""

    def _class_filter_changed(self) -> None:
        """The class filter (and so the visible samples) changed."""

    def _inspected_changed(self) -> None:
        """The inspected sample changed."""

    def _selection_changed(self) -> None:
        """The selection changed."""

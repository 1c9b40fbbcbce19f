"""An interactive 2-D map of embeddings for JupyterLab: :class:`EmbeddingExplorer`.

The explorer projects embeddings to 2-D (UMAP by default, PCA as a fast fallback, or coordinates you give),
colours the points by class, class-aware attention, injected-outlier flag or split, and shows for a hovered or
clicked sample its image (or a summary of its feature vector), its label and its k nearest neighbours in the
*embedding* space (exact, :func:`dmlbook.evaluation.knn`), marking neighbours of another class. A slider walks
through training snapshots; each snapshot's map is aligned to the previous one (orthogonal Procrustes), so
points do not jump between frames. A class filter hides classes, and a box or lasso selection is listed below
the map.

The logic (projections, alignment, neighbours, colours, the HTML panels) is plain Python and is tested without
a browser; the widgets are ipywidgets + a plotly ``FigureWidget``. In a non-interactive run (papermill,
``nbconvert --execute``, a script) the explorer renders a static matplotlib figure instead.

numpy and torch are the only imports at module level: plotly, ipywidgets, umap-learn and matplotlib (the
``viz`` extra) are imported when first needed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import numbers
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dmlbook._checks import check_choice, check_embeddings, check_labels
from dmlbook.evaluation import knn
from dmlbook.viz._images import check_images, feature_svg, png_data_uri
from dmlbook.viz.style import PALETTE

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

COLOR_BY: tuple[str, ...] = ("class", "attention", "outlier", "split")
PROJECTIONS: tuple[str, ...] = ("umap", "pca")
ALIGNMENTS: tuple[str, ...] = ("procrustes", "umap_init", "none")

INLIER_COLOUR = "#b8b8b8"
OUTLIER_COLOUR = "#d55e00"
SAME_CLASS_COLOUR = "#029e73"
OTHER_CLASS_COLOUR = "#d55e00"
ATTENTION_SCALE = "Viridis"  # plotly name; matplotlib's "viridis" is the same map
WEBGL_ABOVE = 2000  # points; above this the map uses plotly's WebGL scatter
STATIC_ENV = "DMLBOOK_EXPLORER_STATIC"  # "1": always static, "0": always interactive
_CACHE_SIZE = 32  # projections kept in the module-level cache


# ------------------------------------------------------------------------------------------ projections
def procrustes_align(moving: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate (or reflect), scale and translate ``moving`` onto ``target``.

    Both are (N, 2) coordinates of the same N points; returns the transformed ``moving``. The rotation is the
    least-squares (orthogonal Procrustes) one, the translation matches the centroids and the scale matches the
    spread (root-mean-square distance to the centroid). This is what keeps the explorer's frames steady: a new
    snapshot's map is only turned, mirrored, moved and resized to match the previous one, never deformed.
    """
    moving = np.asarray(moving, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if moving.shape != target.shape or moving.ndim != 2:
        raise ValueError(
            f"moving and target must have the same (N, 2) shape; got {moving.shape}, {target.shape}"
        )
    mu_m, mu_t = moving.mean(0), target.mean(0)
    a, b = moving - mu_m, target - mu_t  # (N, 2), (N, 2)
    norm = float((a**2).sum())
    if norm == 0.0 or float((b**2).sum()) == 0.0:
        return moving - mu_m + mu_t
    u, _, vt = np.linalg.svd(a.T @ b)  # (2, 2)
    rotation = u @ vt  # (2, 2), orthogonal: the best rotation or reflection
    # match the spread (RMS radius) rather than the least-squares scale, which shrinks a map towards its
    # centre when consecutive snapshots are only weakly related
    scale = float(np.sqrt((b**2).sum() / norm))
    return scale * a @ rotation + mu_t  # (N, 2)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components of ``x`` (N, D) -> (N, 2), signs fixed (largest loading > 0)."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(0)  # (N, D)
    cov = centred.T @ centred  # (D, D)
    _, vecs = np.linalg.eigh(cov)  # ascending eigenvalues
    comps = vecs[:, ::-1][:, :2]  # (D, <=2)
    signs = np.sign(comps[np.abs(comps).argmax(0), np.arange(comps.shape[1])])
    comps = comps * np.where(signs == 0, 1.0, signs)
    out = centred @ comps  # (N, <=2)
    if out.shape[1] < 2:
        out = np.concatenate([out, np.zeros((out.shape[0], 2 - out.shape[1]))], axis=1)
    return out


def umap_2d(
    x: np.ndarray, *, seed: int = 0, init: np.ndarray | None = None, **umap_kwargs: Any
) -> np.ndarray:
    """A 2-D UMAP of ``x`` (N, D) with the Euclidean metric (``umap-learn``; seeded, so single-threaded).

    ``init`` (N, 2) starts the layout from given coordinates (e.g. the previous snapshot's map).
    """
    try:
        import umap
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "projection='umap' needs umap-learn: pip install 'dmlbook[viz]' (or use projection='pca')"
        ) from err
    n = x.shape[0]
    params: dict[str, Any] = {
        "n_neighbors": max(2, min(15, n - 1)),
        "min_dist": 0.1,
        "metric": "euclidean",
        "random_state": seed,
    }
    params.update(umap_kwargs)
    params["n_components"] = 2
    if init is not None:
        params["init"] = np.asarray(init, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init fallbacks
        return np.asarray(
            umap.UMAP(**params).fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64
        )


_PROJECTION_CACHE: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()


def _digest(x: np.ndarray | None) -> str | None:
    if x is None:
        return None
    x = np.ascontiguousarray(x)
    h = hashlib.blake2b(x.view(np.uint8).ravel(), digest_size=16)
    h.update(repr((x.shape, x.dtype.str)).encode())
    return h.hexdigest()


def _cached_projection(
    method: str, x: np.ndarray, *, seed: int, init: np.ndarray | None, umap_kwargs: Mapping[str, Any]
) -> np.ndarray:
    """``umap_2d`` / ``pca_2d`` behind a small LRU cache keyed by the data (content), init, seed, kwargs."""
    key = (method, _digest(x), seed, _digest(init), repr(sorted(umap_kwargs.items())))
    if key in _PROJECTION_CACHE:
        _PROJECTION_CACHE.move_to_end(key)
        return _PROJECTION_CACHE[key]
    out = umap_2d(x, seed=seed, init=init, **umap_kwargs) if method == "umap" else pca_2d(x)
    _PROJECTION_CACHE[key] = out
    while len(_PROJECTION_CACHE) > _CACHE_SIZE:
        _PROJECTION_CACHE.popitem(last=False)
    return out


# ------------------------------------------------------------------------------------- environment check
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


# ----------------------------------------------------------------------------------------- validation
def _as_float_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold floating-point numbers; got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind != "f" else x.dtype))
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (N, dim); got {type(x).__name__}"
        )
    return x.detach().cpu()


def _check_snapshots(embeddings: Any) -> list[Tensor]:
    """embeddings: (N, D) / (S, N, D) array or tensor, or a list of (N, D) -> list of validated (N, D)."""
    if isinstance(embeddings, (list, tuple)):
        if not embeddings:
            raise ValueError("embeddings is an empty list; give one (N, dim) array per snapshot")
        items = [
            (_as_float_tensor(e, f"embeddings[{s}]"), f"embeddings[{s}]") for s, e in enumerate(embeddings)
        ]
    else:
        x = _as_float_tensor(embeddings, "embeddings")
        if x.dim() == 3:
            items = [(x[s], f"embeddings[{s}]") for s in range(x.shape[0])]
            if not items:
                raise ValueError("embeddings has shape (0, N, dim); give at least one snapshot")
        else:
            items = [(x, "embeddings")]
    out = []
    for x, name in items:
        if x.dim() != 2:
            raise ValueError(f"{name} must be 2-D (N, dim); got shape {tuple(x.shape)}")
        x = check_embeddings(x if x.is_floating_point() else x.float(), name, min_samples=2)
        if out and x.shape[0] != out[0].shape[0]:
            raise ValueError(
                f"{name} has {x.shape[0]} rows but embeddings[0] has {out[0].shape[0]}; "
                "every snapshot must hold the same samples in the same order"
            )
        out.append(x.to(torch.float32).contiguous())
    return out


def _per_sample(values: Any, n: int, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(
            f"{name} must be a sequence or array with one value per sample; got {type(values).__name__}"
        )
    arr = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one value per sample; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but embeddings has {n} rows; they must match")
    return arr


def _check_attention(attention: Any, n: int, n_snapshots: int) -> np.ndarray:
    """(N,), (S, N) or a list of S (N,) -> float64 (S, N)."""
    if isinstance(attention, (list, tuple)) and attention and hasattr(attention[0], "__len__"):
        rows = [np.asarray(_to_numpy(a), dtype=np.float64) for a in attention]
        if any(r.ndim != 1 for r in rows):
            raise ValueError("attention given as a list must hold one 1-D (N,) array per snapshot")
        if len({r.shape[0] for r in rows}) != 1:
            raise ValueError("attention given as a list must hold arrays of the same length N")
        arr = np.stack(rows)
    else:
        try:
            arr = np.asarray(_to_numpy(attention), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"attention must hold numbers (one weight per sample): {err}") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"attention must have shape (N,) or (snapshots, N); got {arr.shape}")
    if arr.shape[1] != n:
        raise ValueError(f"attention has {arr.shape[1]} entries per snapshot but embeddings has {n} rows")
    if arr.shape[0] not in (1, n_snapshots):
        raise ValueError(
            f"attention has {arr.shape[0]} snapshots but embeddings has {n_snapshots}; give one (N,) array "
            "for all snapshots or one per snapshot"
        )
    if not np.isfinite(arr).all():
        raise ValueError("attention contains NaN or infinite values")
    return np.repeat(arr, n_snapshots, axis=0) if arr.shape[0] == 1 else arr


def _to_numpy(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _check_outlier(outlier: Any, n: int) -> np.ndarray:
    arr = np.asarray(_to_numpy(_per_sample(outlier, n, "outlier")))
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError("outlier must be a boolean mask (or 0/1 values), one per sample") from None
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError("outlier must be a boolean mask (or 0/1 values), one per sample")
    return arr.astype(bool)


def _check_coords(projection: Any, n: int, n_snapshots: int) -> list[np.ndarray]:
    """Given coordinates: (N, 2), (S, N, 2) or a list of S (N, 2) -> list of float64 (N, 2)."""
    if isinstance(projection, (list, tuple)):
        frames = [np.asarray(_to_numpy(p), dtype=np.float64) for p in projection]
    else:
        arr = np.asarray(_to_numpy(projection), dtype=np.float64)
        frames = list(arr) if arr.ndim == 3 else [arr]
    if len(frames) != n_snapshots:
        raise ValueError(
            f"projection gives coordinates for {len(frames)} snapshots but embeddings has {n_snapshots}"
        )
    for s, frame in enumerate(frames):
        if frame.shape != (n, 2):
            raise ValueError(
                f"projection coordinates must have shape ({n}, 2) per snapshot; got {frame.shape}"
            )
        if not np.isfinite(frame).all():
            raise ValueError(f"projection coordinates (snapshot {s}) contain NaN or infinite values")
    return frames


def _check_int(value: Any, name: str, *, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return int(value)


def _check_bool_or_none(value: Any, name: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None; got {value!r}")
    return value


def _categorical_colours(n: int) -> list[str]:
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


def _discrete_colorscale(colours: Sequence[str]) -> list[list[Any]]:
    """A plotly colorscale with one flat band per category (codes 0..C-1 with cmin=-0.5, cmax=C-0.5)."""
    c = len(colours)
    scale: list[list[Any]] = []
    for i, colour in enumerate(colours):
        scale += [[i / c, colour], [(i + 1) / c, colour]]
    return scale


# --------------------------------------------------------------------------------------------- results
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


@dataclass(frozen=True)
class _ColourSpec:
    values: np.ndarray  # (N,) float32: category codes or continuous values
    categorical: bool
    colours: list[str]  # one per category (categorical only)
    categories: list[str]  # category names (categorical only)
    cmin: float
    cmax: float
    title: str


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


# -------------------------------------------------------------------------------------------- explorer
class EmbeddingExplorer:
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
        raw = _check_snapshots(embeddings)
        n = raw[0].shape[0]
        self._n, self._s = n, len(raw)
        self.labels: np.ndarray = check_labels(labels, n, "labels").cpu().numpy().astype(np.int64)
        self.normalize = bool(normalize)
        self._raw_norms = [x.norm(dim=1).numpy() for x in raw]  # (N,) per snapshot
        self._snapshots = [torch.nn.functional.normalize(x, dim=1) if self.normalize else x for x in raw]
        self.k = _check_int(k, "k", lo=1, hi=n - 1)

        self.classes: np.ndarray = np.unique(self.labels)  # sorted
        self._class_codes = np.searchsorted(self.classes, self.labels)  # (N,) 0..C-1
        self.class_names: dict[int, str] = self._check_names(names)
        self.snapshot_names: list[str] = self._check_snapshot_names(snapshot_names)

        self.images = None if images is None else check_images(images, n, "images")
        self.attention = None if attention is None else _check_attention(attention, n, self._s)
        self.outlier = None if outlier is None else _check_outlier(outlier, n)
        if split is None:
            self.split = None
        else:
            self.split = np.array([str(v) for v in _per_sample(split, n, "split")], dtype=object)
        self._split_names = [] if self.split is None else sorted(set(self.split.tolist()))

        if isinstance(projection, str):
            self.projection = check_choice(projection, PROJECTIONS, "projection")
            self._given: list[np.ndarray] | None = None
        else:
            self.projection = "coords"
            self._given = _check_coords(projection, n, self._s)
        self.align = check_choice(align, ALIGNMENTS, "align")
        if self.align == "umap_init" and self.projection != "umap":
            raise ValueError(f"align='umap_init' needs projection='umap'; got projection={self.projection!r}")
        self.seed = _check_int(seed, "seed", lo=0)
        if umap_kwargs is not None and not isinstance(umap_kwargs, Mapping):
            raise TypeError(
                f"umap_kwargs must be a dict of umap.UMAP arguments; got {type(umap_kwargs).__name__}"
            )
        self.umap_kwargs = dict(umap_kwargs or {})
        self.static = _check_bool_or_none(static, "static")
        self.webgl = _check_bool_or_none(webgl, "webgl")
        self.height = _check_int(height, "height", lo=200)
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
        self._ui: ExplorerUI | None = None
        self._syncing = False

    # ---------------------------------------------------------------------------------- input checks
    def _check_names(self, names: Any) -> dict[int, str]:
        if names is None:
            return {int(c): str(int(c)) for c in self.classes}
        if isinstance(names, Mapping):
            try:
                lookup = {int(key): str(value) for key, value in names.items()}
            except (TypeError, ValueError):
                raise TypeError(f"names must map int labels to names; got keys {list(names)[:5]}") from None
            missing = [int(c) for c in self.classes if int(c) not in lookup]
            if missing:
                raise ValueError(f"names has no entry for labels {missing[:10]}; give a name for every label")
            return {int(c): lookup[int(c)] for c in self.classes}
        if isinstance(names, np.ndarray) and names.ndim == 1:
            names = names.tolist()
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise TypeError(
                f"names must be a sequence indexed by label or a dict {{label: name}}; got {names!r}"
            )
        lo, hi = int(self.classes.min()), int(self.classes.max())
        if lo < 0 or hi >= len(names):
            raise ValueError(
                f"names has {len(names)} entries but labels range over [{lo}, {hi}]; a sequence of names is "
                "indexed by label (use a dict for other labels)"
            )
        return {int(c): str(names[int(c)]) for c in self.classes}

    def _check_snapshot_names(self, snapshot_names: Any) -> list[str]:
        if snapshot_names is None:
            return [f"snapshot {s}" for s in range(self._s)]
        if isinstance(snapshot_names, (str, bytes)) or not isinstance(snapshot_names, Sequence):
            raise TypeError(
                f"snapshot_names must be a sequence of strings; got {type(snapshot_names).__name__}"
            )
        if len(snapshot_names) != self._s:
            raise ValueError(
                f"snapshot_names has {len(snapshot_names)} entries but there are {self._s} snapshots"
            )
        return [str(name) for name in snapshot_names]

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
        return _check_int(snapshot, "snapshot", lo=0, hi=self._s - 1)

    def _check_index(self, index: Any, name: str = "index") -> int:
        if isinstance(index, np.integer):
            index = int(index)
        return _check_int(index, name, lo=0, hi=self._n - 1)

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
            f"EmbeddingExplorer(n_samples={self._n}, n_snapshots={self._s}, classes={len(self.classes)}, "
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
            out = _cached_projection(
                self.projection, x, seed=self.seed, init=init, umap_kwargs=self.umap_kwargs
            )
            if prev is not None:
                out = procrustes_align(out, prev)
        self._coords[s] = np.asarray(out, dtype=np.float64)
        return self._coords[s]

    def precompute(self) -> EmbeddingExplorer:
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

    def _colour_spec(self, mode: str, snapshot: int) -> _ColourSpec:
        if mode == "class":
            colours = _categorical_colours(len(self.classes))
            names = [self.class_names[int(c)] for c in self.classes]
            values = self._class_codes.astype(np.float32)
            return _ColourSpec(values, True, colours, names, -0.5, len(colours) - 0.5, "class")
        if mode == "outlier":
            assert self.outlier is not None
            values = self.outlier.astype(np.float32)
            return _ColourSpec(
                values, True, [INLIER_COLOUR, OUTLIER_COLOUR], ["inlier", "outlier"], -0.5, 1.5, "outlier"
            )
        if mode == "split":
            assert self.split is not None
            codes = np.searchsorted(np.array(self._split_names, dtype=object), self.split).astype(np.float32)
            colours = _categorical_colours(len(self._split_names))
            return _ColourSpec(
                codes, True, colours, list(self._split_names), -0.5, len(colours) - 0.5, "split"
            )
        assert self.attention is not None
        lo, hi = float(self.attention.min()), float(self.attention.max())
        if hi <= lo:
            hi = lo + 1e-6
        return _ColourSpec(self.attention[snapshot].astype(np.float32), False, [], [], lo, hi, "attention")

    # ------------------------------------------------------------------------------------------ state
    def set_snapshot(self, snapshot: int) -> None:
        """Show snapshot ``snapshot`` (what the slider does)."""
        s = self._check_snapshot(snapshot)
        self.snapshot = s
        if self._ui is not None:
            self._sync(self._ui.snapshot, s)
            self._update_points(positions=True, colours=self.color_by == "attention")
            self._update_overlay()
            self._ui.details.value = self.details_html()
            if len(self._selected) and self.attention is not None:
                self._ui.selection.value = self.selection_html()

    def set_color_by(self, color_by: str) -> None:
        """Colour the points by "class", "attention", "outlier" or "split" (what the dropdown does)."""
        self.color_by = self._check_color_by(color_by)
        if self._ui is not None:
            self._sync(self._ui.color_by, self.color_by)
            self._update_points(colours=True)

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
        if self._ui is not None:
            self._sync(self._ui.class_filter, wanted)
            self._update_points(positions=True, colours=True, text=True)

    def inspect(self, index: int | None, *, source: str = "click") -> None:
        """Show sample ``index`` (its image, label and neighbours) in the panel, as a hover or click does.

        ``None`` clears the panel. ``source`` ("click" or "hover") is shown in the panel.
        """
        self.current = None if index is None else self._check_index(index)
        self._source = check_choice(source, ("click", "hover"), "source")
        if self._ui is not None:
            self._update_overlay()
            self._ui.details.value = self.details_html()

    def select(self, indices: Sequence[int] | np.ndarray | None) -> None:
        """Select these samples (what a box or lasso selection does) and list them in the selection panel."""
        if indices is None:
            indices = []
        arr = np.asarray(_to_numpy(indices))
        if arr.size and (arr.dtype.kind not in "iu" or arr.ndim != 1):
            raise TypeError(f"indices must be a 1-D sequence of sample indices (ints); got dtype {arr.dtype}")
        arr = np.unique(arr.astype(np.int64))
        if arr.size and (arr[0] < 0 or arr[-1] >= self._n):
            raise ValueError(f"indices must lie in [0, {self._n - 1}]; got range [{arr[0]}, {arr[-1]}]")
        self._selected = arr
        if self._ui is not None:
            self._ui.selection.value = self.selection_html()
            self._update_points(selection=True)

    def clear_selection(self) -> None:
        """Select nothing."""
        self.select([])

    # ------------------------------------------------------------------------------------------- HTML
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

    # ---------------------------------------------------------------------------------------- widgets
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
            scale = _discrete_colorscale(spec.colours)
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

    # ---------------------------------------------------------------------------------------- static
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

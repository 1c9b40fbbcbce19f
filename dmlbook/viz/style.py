"""One look for every figure in the book.

:func:`setup_notebook` (inline backend, rcParams), :data:`PALETTE`, :func:`method_color`, :func:`savefig`.

matplotlib is imported inside the functions, so ``import dmlbook.viz`` stays cheap and the core library never
imports it.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

from dmlbook._checks import check_choice, check_positive

# seaborn's "colorblind" palette (Okabe-Ito-like), hard-coded so that seaborn is optional
PALETTE: tuple[str, ...] = (
    "#0173b2",
    "#de8f05",
    "#029e73",
    "#d55e00",
    "#cc78bc",
    "#ca9161",
    "#fbafe4",
    "#949494",
    "#ece133",
    "#56b4e9",
)

# related methods get related hues: batch-hard/semi-hard blues, OSM/OSM+CAA oranges, no-mining baseline grey
METHOD_COLORS: dict[str, str] = {
    "none": PALETTE[7],
    "batch_hard": PALETTE[0],
    "semi_hard": PALETTE[9],
    "multi_similarity": PALETTE[2],
    "osm": PALETTE[1],
    "osm_caa": PALETTE[3],
    "contrastive": PALETTE[4],
    "triplet": PALETTE[5],
    "lifted": PALETTE[6],
    "ranked_list": PALETTE[8],
}

FIGURE_FORMATS = ("svg", "png", "retina", "pdf")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

RC_PARAMS: dict[str, Any] = {
    "figure.figsize": (6.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "image.cmap": "viridis",
    "svg.fonttype": "none",  # keep text as text in SVGs
}


def _normalise(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a method name (str) such as 'batch_hard'; got {type(name).__name__}")
    if not name.strip():
        raise ValueError(f"name must be a non-empty method name such as 'batch_hard'; got {name!r}")
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def method_color(name: str) -> str:
    """A stable hex colour for a method name ("batch_hard", "osm_caa", "Multi-Similarity", ...).

    Known methods (:data:`METHOD_COLORS`) have fixed colours; any other name gets a palette colour chosen by a
    hash of the name, the same in every session. Case, spaces and dashes are ignored.
    """
    key = _normalise(name)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return PALETTE[zlib.crc32(key.encode()) % len(PALETTE)]


def _in_ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def setup_notebook(*, figure_format: str = "svg", font_scale: float = 1.0) -> None:
    """Inline figures in ``figure_format`` and the book's rcParams (font sizes, palette, light grid).

    Args:
        figure_format: inline format, one of "svg", "png", "retina", "pdf"; use "png" for scatter plots with
            more than a few thousand points.
        font_scale: multiplies every font size (e.g. 1.2 for slides).
    Outside IPython only the rcParams are set.
    """
    check_choice(figure_format, FIGURE_FORMATS, "figure_format")
    font_scale = check_positive(font_scale, "font_scale")
    import matplotlib as mpl
    from cycler import cycler

    shell = _in_ipython()
    if shell is not None:  # the inline backend resets some rcParams, so it goes first
        shell.run_line_magic("matplotlib", "inline")
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats(figure_format)
    params = dict(RC_PARAMS, **{"axes.prop_cycle": cycler(color=list(PALETTE))})
    for key in (
        "font.size",
        "axes.titlesize",
        "axes.labelsize",
        "xtick.labelsize",
        "ytick.labelsize",
        "legend.fontsize",
    ):
        params[key] = RC_PARAMS[key] * font_scale
    mpl.rcParams.update(params)


def savefig(
    fig: Any, name: str, out_dir: str | Path, *, formats: tuple[str, ...] = ("png", "svg")
) -> list[Path]:
    """Write ``fig`` to ``out_dir/figures/name.{png,svg}`` (creating folders) and return the paths.

    Args:
        fig: a matplotlib Figure.
        name: a file stem such as "loss_curves" (no folder, no extension).
        out_dir: the notebook's ``out_dir`` parameter.
        formats: file extensions to write.
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a file stem (str) like 'loss_curves'; got {type(name).__name__}")
    if not _NAME.match(name) or Path(name).suffix.lower() in {".png", ".svg", ".pdf"}:
        raise ValueError(
            f"name must be a file stem like 'loss_curves' (no folder, no extension); got {name!r}"
        )
    if not formats or not all(f in {"png", "svg", "pdf"} for f in formats):
        raise ValueError(f"formats must be a non-empty tuple of 'png', 'svg', 'pdf'; got {formats!r}")
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{fmt}" for fmt in formats]
    for path in paths:
        fig.savefig(path, bbox_inches="tight")
    return paths

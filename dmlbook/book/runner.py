"""Executing the chapters: which notebooks, their data requirements, papermill into ``DIR/NN_name/`` (executed
``.ipynb``, ``.html``, ``metrics.json``), and the summary table of the results.

papermill and nbconvert are imported when a notebook runs, not at module level.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kernels import current_python_kernel_manager, ipc_kernel_manager
from .params import BookConfigError, ParameterError, ParamSet, resolve_parameters

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
OUT_DIR = REPO_ROOT / "build" / "book"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
DATA_HELP = (
    "see data/README.md, or run `python -m dmlbook data list` and `python -m dmlbook data download NAME`"
)


# --------------------------------------------------------------------------------------------------------
# Data requirements
# --------------------------------------------------------------------------------------------------------


def data_root() -> Path:
    """``$DMLBOOK_DATA``, or ``<repo>/data``."""
    return Path(os.environ.get("DMLBOOK_DATA") or REPO_ROOT / "data")


def missing_data(requires: Sequence[str], root: Path | None = None) -> list[Path]:
    """The required dataset folders that are absent or empty under ``root`` (default :func:`data_root`)."""
    root = data_root() if root is None else root
    missing = []
    for name in requires:
        folder = root / name
        if not folder.is_dir() or not any(folder.iterdir()):
            missing.append(folder)
    return missing


def missing_data_message(stem: str, missing: Sequence[Path]) -> str:
    """A one-paragraph explanation of what is missing and how to get it."""
    names = ", ".join(p.name for p in missing)
    folders = ", ".join(str(p) for p in missing)
    return (
        f"skipped {stem}: needs dataset(s) {names}, not found (missing or empty: {folders}; data root is "
        f"$DMLBOOK_DATA or <repo>/data); {DATA_HELP}. Nothing else is substituted."
    )


# --------------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """The outcome of one notebook: ``status`` is ``ok``, ``failed`` or ``skipped``."""

    stem: str
    status: str
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _execution_error(exc: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        first = str(exc.evalue).strip().splitlines()[0] if str(exc.evalue).strip() else ""
        return f"{exc.ename}: {first} (cell [{exc.exec_count}])"
    return f"{type(exc).__name__}: {exc}"


def _write_html(executed: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    executed.with_suffix(".html").write_text(body, encoding="utf-8")


def _read_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"the notebook wrote no metrics.json to its out_dir ({folder})")
    metrics = json.loads(path.read_text())
    if not isinstance(metrics, dict):
        raise TypeError(f"{path} must hold a JSON object; got {type(metrics).__name__}")
    return metrics


def execute_notebook(nb_path: Path, folder: Path, params: dict[str, Any], *, kernel: str | None) -> Result:
    """Run one notebook into ``folder`` (executed copy, HTML, metrics.json) and report what happened."""
    import tempfile

    import papermill

    folder.mkdir(parents=True, exist_ok=True)
    executed = folder / nb_path.name
    for stale in (executed, executed.with_suffix(".html"), folder / "metrics.json"):
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    result = Result(stem=nb_path.stem, status="ok")
    # the kernel's IPC sockets live in a folder of their own, removed afterwards even if a shutdown goes wrong
    with tempfile.TemporaryDirectory(prefix="dmlbook-kernel-") as sockets:
        manager = current_python_kernel_manager(sockets) if kernel is None else ipc_kernel_manager(sockets)
        try:
            papermill.execute_notebook(
                str(nb_path),
                str(executed),
                parameters=params,
                cwd=str(nb_path.parent),
                kernel_name=kernel,
                progress_bar=False,
                log_output=False,
                kernel_manager_class=manager,
            )
            result.metrics = _read_metrics(folder)
        except Exception as exc:  # noqa: BLE001  (a failing notebook must not stop the book)
            result.status, result.note = "failed", _execution_error(exc)
    result.seconds = time.perf_counter() - start
    if executed.exists():
        try:
            _write_html(executed)
        except Exception as exc:  # noqa: BLE001
            result.status, result.note = "failed", f"HTML export failed: {type(exc).__name__}: {exc}"
    return result


# --------------------------------------------------------------------------------------------------------
# Selection and summary
# --------------------------------------------------------------------------------------------------------


def find_notebooks(notebooks_dir: Path) -> list[Path]:
    """``NN_name.ipynb`` files in ``notebooks_dir``, sorted."""
    return sorted(notebooks_dir.glob(NOTEBOOK_GLOB))


def select_notebooks(notebooks: Sequence[Path], only: Sequence[str] | None) -> list[Path]:
    """Keep the notebooks whose ``NN`` prefix (or full stem) is in ``only``; all when ``only`` is None."""
    if not only:
        return list(notebooks)
    available = {nb.stem.split("_", 1)[0] for nb in notebooks} | {nb.stem for nb in notebooks}
    unknown = [o for o in only if o not in available]
    if unknown:
        names = ", ".join(nb.stem for nb in notebooks)
        raise BookConfigError(f"--only {' '.join(unknown)}: no such notebook; available: {names}")
    return [nb for nb in notebooks if nb.stem.split("_", 1)[0] in only or nb.stem in only]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are left out (not headline numbers)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat |= flatten_metrics(value, f"{prefix}{key}.")
        elif not isinstance(value, (list, tuple)):
            flat[f"{prefix}{key}"] = value
    return flat


def _metrics_text(result: Result, *, width: int = 72, count: int = 4) -> str:
    if result.note:
        text = result.note
    else:
        items = list(flatten_metrics(result.metrics).items())[:count]
        text = "  ".join(f"{k}={_short(v)}" for k, v in items)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_summary(results: Sequence[Result]) -> str:
    """A plain-text table: notebook, status, seconds, headline metrics (or the failure/skip reason)."""
    name_width = max([len("notebook"), *(len(r.stem) for r in results)])
    lines = [f"{'notebook':<{name_width}}  {'status':<7}  {'seconds':>7}  metrics"]
    lines.append("-" * len(lines[0]) + "-" * 20)
    for r in results:
        lines.append(f"{r.stem:<{name_width}}  {r.status:<7}  {r.seconds:>7.1f}  {_metrics_text(r)}")
    return "\n".join(lines)


def _prepare(nb_path: Path, param_set: ParamSet, folder: Path) -> Result | dict[str, Any]:
    """The notebook's parameters, or a Result saying why it does not run (bad parameters, missing data)."""
    missing = missing_data(param_set.requires.get(nb_path.stem, []))
    if missing:
        message = missing_data_message(nb_path.stem, missing)
        print(message, flush=True)
        return Result(
            stem=nb_path.stem, status="skipped", note=f"missing data: {', '.join(p.name for p in missing)}"
        )
    try:
        return resolve_parameters(nb_path, param_set, folder)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return Result(stem=nb_path.stem, status="failed", note=f"not run: {exc}")


def run_book(
    notebooks: Sequence[Path], param_set: ParamSet, out: Path, *, kernel: str | None
) -> list[Result]:
    """Execute ``notebooks`` in order with ``param_set`` into ``out``; one Result per notebook."""
    results = []
    for i, nb_path in enumerate(notebooks, 1):
        folder = out / nb_path.stem
        prepared = _prepare(nb_path, param_set, folder)
        if isinstance(prepared, Result):
            results.append(prepared)
            continue
        print(f"[{i}/{len(notebooks)}] {nb_path.stem} ({param_set.name}) -> {folder}", flush=True)
        result = execute_notebook(nb_path, folder, prepared, kernel=kernel)
        print(
            f"    {result.status} in {result.seconds:.1f} s{': ' + result.note if result.note else ''}",
            flush=True,
        )
        results.append(result)
    return results

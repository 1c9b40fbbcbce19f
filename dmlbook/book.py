"""The book: execute ``notebooks/NN_name.ipynb`` with papermill, plus the helpers a notebook calls.

Command line (see ``notebooks/README.md``)::

    python -m dmlbook book [--params ci|default|real|full] [--only NN [NN ...]] [--out DIR]
                           [--notebooks-dir DIR] [--kernel NAME]

Each notebook runs in its own folder ``DIR/NN_name/`` (executed ``.ipynb``, ``.html``, ``figures/`` and the
``metrics.json`` the notebook writes through its ``out_dir`` parameter); a summary table follows, and the exit
status is 1 if any notebook failed (2 for a usage or configuration error).

Two functions are meant for the notebooks themselves:

* :func:`notebook_parameters` goes in the cell after the ``parameters`` cell and stops the notebook with a
  :class:`ParameterError` when a value has the wrong type or an override names an undeclared parameter,
  also when the notebook is run by plain ``papermill`` (which only warns);
* :func:`save_metrics` writes the headline numbers to ``out_dir/metrics.json``.

Only the standard library is imported at module level, so notebooks can import this module cheaply; papermill,
nbconvert, jupyter_client and PyYAML are imported when the runner needs them.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import json
import math
import os
import sys
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
OUT_DIR = REPO_ROOT / "build" / "book"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
DEFAULT_SET = "default"
RUNNER_SET = frozenset({"out_dir"})  # parameters the runner sets itself
DATA_HELP = (
    "see data/README.md, or run `python -m dmlbook data list` and `python -m dmlbook data download NAME`"
)

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}
_PAPERMILL_HEADER = "# Parameters"  # first line of the cell papermill injects (tag "injected-parameters")


class ParameterError(ValueError):
    """A notebook parameter is unknown or has the wrong type."""


class BookConfigError(ValueError):
    """A params file, ``--only`` selection or data requirement is malformed."""


# --------------------------------------------------------------------------------------------------------
# Parameter types: shared by the runner (before execution) and the notebook (at run time)
# --------------------------------------------------------------------------------------------------------


def _type_name(expected: type) -> str:
    return getattr(expected, "__name__", str(expected))


def check_parameter(name: str, value: Any, expected: type, *, where: str = "") -> Any:
    """Return ``value`` if it is an instance of ``expected``; an int is accepted for (and made) a float.

    ``bool`` is never accepted for ``int``/``float`` nor the reverse. ``where`` prefixes the error message
    (e.g. the notebook name). Raises :class:`ParameterError` naming the parameter and both types.
    """
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    is_bool_mismatch = isinstance(value, bool) != (expected is bool) and expected in (int, float, bool)
    if is_bool_mismatch or not isinstance(value, expected):
        prefix = f"{where}: " if where else ""
        raise ParameterError(
            f"{prefix}parameter {name!r} must be {_type_name(expected)} (as declared); "
            f"got {value!r} of type {type(value).__name__}"
        )
    return value


def _resolve_annotation(name: str, annotation: Any) -> type:
    """A type from a parameters-cell annotation (a type, a union, or its name as a string)."""
    if isinstance(annotation, str):
        if annotation not in _TYPES:
            raise ParameterError(
                f"parameter {name!r}: annotation {annotation!r} is not one of {', '.join(_TYPES)}"
            )
        return _TYPES[annotation]
    origin = typing.get_origin(annotation)
    return origin if origin in (list, dict, tuple) else annotation  # list[int] -> list


def _unknown_hint(name: str, declared: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, declared, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{hint}; declared parameters: {', '.join(sorted(declared)) or '(none)'}"


# --------------------------------------------------------------------------------------------------------
# Helpers called from inside a notebook
# --------------------------------------------------------------------------------------------------------


def _injected_names(history: Sequence[str]) -> list[str]:
    """Names assigned by the last cell papermill injected, found in IPython's input history (``_ih``)."""
    for source in reversed(list(history)):
        lines = source.strip().splitlines()
        if not lines or lines[0].strip() != _PAPERMILL_HEADER:
            continue
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue
        if body and all(isinstance(s, ast.Assign) for s in body):
            return [t.id for s in body for t in s.targets if isinstance(t, ast.Name)]
    return []


def notebook_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """Check the notebook's parameters and return them as a dict (in declaration order).

    Call it as ``params = notebook_parameters(globals())`` in the cell right after the ``parameters``
    cell. The declared parameters are the annotated assignments of that cell (``epochs: int = 3  # help``),
    which IPython records in ``__annotations__``. Each current value must match its annotation (ints are
    turned into floats in ``namespace`` for ``float`` parameters), and every name in papermill's
    injected-parameters cell must be declared. Raises :class:`ParameterError` otherwise, which stops the
    notebook.
    """
    annotations = namespace.get("__annotations__") or {}
    if not annotations:
        raise ParameterError(
            "no declared parameters: the cell tagged 'parameters' must use annotated literals, "
            "e.g. `epochs: int = 3  # training epochs`"
        )
    unknown = [n for n in _injected_names(namespace.get("_ih", ())) if n not in annotations]
    if unknown:
        raise ParameterError(
            f"unknown parameter {unknown[0]!r} was passed{_unknown_hint(unknown[0], list(annotations))}"
        )
    params: dict[str, Any] = {}
    for name, annotation in annotations.items():
        if name not in namespace:
            raise ParameterError(
                f"parameter {name!r} is annotated but has no value: write `{name}: T = value`"
            )
        value = check_parameter(name, namespace[name], _resolve_annotation(name, annotation))
        namespace[name] = params[name] = value
    return params


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy/torch values become Python numbers/lists, mappings and sequences are walked."""
    if hasattr(value, "tolist") and hasattr(value, "ndim"):  # numpy/torch scalars and arrays
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def save_metrics(out_dir: str | os.PathLike[str], **metrics: Any) -> Path:
    """Write ``metrics`` to ``out_dir/metrics.json`` (creating the folder) and return the path.

    Values may be nested dicts/lists of numbers, strings and bools; numpy/torch scalars and arrays are
    converted. The book's summary table shows the first few scalar entries: put the headline numbers first.
    """
    if not metrics:
        raise ValueError(
            "save_metrics needs at least one metric, e.g. save_metrics(out_dir, recall_at_1=0.8)"
        )
    path = Path(out_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(metrics), indent=2, allow_nan=True) + "\n")
    return path


# --------------------------------------------------------------------------------------------------------
# Parameter sets (notebooks/params/NAME.yaml)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSet:
    """A parsed params file: ``common`` overrides, per-notebook overrides and data requirements."""

    name: str
    source: Path | None
    common: dict[str, Any] = field(default_factory=dict)
    per_notebook: dict[str, dict[str, Any]] = field(default_factory=dict)
    requires: dict[str, list[str]] = field(default_factory=dict)


def available_param_sets(notebooks_dir: Path) -> list[str]:
    """``default`` plus the stem of every ``params/*.yaml``."""
    names = {p.stem for p in (notebooks_dir / "params").glob("*.yaml")}
    return [DEFAULT_SET, *sorted(names - {DEFAULT_SET})]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BookConfigError(f"{where} must be a mapping of name: value; got {type(value).__name__}")
    return value


def _requires(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BookConfigError(f"{where}.requires must be a list of dataset folder names; got {value!r}")
    for name in value:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BookConfigError(
                f"{where}.requires: {name!r} must be a folder name relative to the data root"
            )
    return list(value)


def load_param_set(name: str, notebooks_dir: Path, stems: Sequence[str]) -> ParamSet:
    """Read ``notebooks_dir/params/NAME.yaml`` and check its structure against the notebook ``stems``.

    ``default`` needs no file (no overrides); a ``default.yaml``, if present, may hold only ``requires``.
    Raises :class:`BookConfigError` for a missing file, a section that names no notebook, or a bad shape.
    """
    path = notebooks_dir / "params" / f"{name}.yaml"
    if not path.exists():
        if name == DEFAULT_SET:
            return ParamSet(name=name, source=None)
        choices = ", ".join(available_param_sets(notebooks_dir))
        raise BookConfigError(f"--params {name!r}: no file {path}; available: {choices}")
    import yaml

    raw = _mapping(yaml.safe_load(path.read_text()), str(path))
    common = _mapping(raw.pop("common", None), f"{path}: common")
    if "requires" in common:
        raise BookConfigError(f"{path}: common: `requires` belongs in a notebook's own section")
    per_notebook: dict[str, dict[str, Any]] = {}
    requires: dict[str, list[str]] = {}
    for stem, section in raw.items():
        where = f"{path}: {stem}"
        if stem not in stems:
            raise BookConfigError(
                f"{where}: no notebook {stem}.ipynb in {notebooks_dir}; notebooks: "
                f"{', '.join(stems) or '(none)'}"
            )
        section = dict(_mapping(section, where))
        if "requires" in section:
            requires[stem] = _requires(section.pop("requires"), where)
        per_notebook[stem] = section
    if name == DEFAULT_SET and (common or any(per_notebook.values())):
        raise BookConfigError(
            f"{path}: the default set runs the notebooks' own values, so it may only "
            "hold `requires:` lists; put overrides in another params file"
        )
    return ParamSet(name=name, source=path, common=common, per_notebook=per_notebook, requires=requires)


def declared_parameters(nb_path: Path) -> dict[str, type]:
    """The parameters a notebook declares (papermill's view of its ``parameters`` cell) with their types.

    A parameter without annotation gets the type of its default literal; an annotation other than int, float,
    str, bool, list or dict (e.g. ``str | None``) accepts any value here and is checked in the notebook.
    """
    import papermill

    declared: dict[str, type] = {}
    for name, info in papermill.inspect_notebook(str(nb_path)).items():
        type_name = info["inferred_type_name"]
        if type_name in _TYPES:
            declared[name] = _TYPES[type_name]
        elif type_name != "None":  # e.g. "str | None": left to the notebook's own guard
            declared[name] = object
        else:
            declared[name] = _literal_type(info["default"])
    return declared


def _literal_type(source: str) -> type:
    """The type of an unannotated default literal; ``object`` (anything goes) for None or an expression."""
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return object
    return object if value is None else type(value)


def _declared_if_readable(nb_path: Path) -> dict[str, type]:
    """:func:`declared_parameters`, or nothing for a notebook that cannot be read (it fails when it runs)."""
    try:
        return declared_parameters(nb_path)
    except Exception:  # noqa: BLE001
        return {}


def check_common(param_set: ParamSet, notebooks: Sequence[Path]) -> None:
    """Every name in the ``common`` section must be declared by at least one of ``notebooks`` (all the book's
    chapters, not only those selected): ``common`` applies each name where it is declared, so a misspelt one
    would otherwise apply nowhere, silently. ``out_dir`` is the runner's. Raises :class:`BookConfigError`."""
    if not param_set.common:
        return
    where = f"{param_set.source}: common" if param_set.source else "common"
    for name in param_set.common:
        if name in RUNNER_SET:
            raise BookConfigError(f"{where}: {name!r} is set by the runner (--out); remove it from the params file")
    declared = sorted({name for nb in notebooks for name in _declared_if_readable(nb)} - RUNNER_SET)
    unknown = [name for name in param_set.common if name not in declared]
    if unknown:
        raise BookConfigError(
            f"{where}: unknown parameter {unknown[0]!r}: no notebook declares it"
            f"{_unknown_hint(unknown[0], declared)}"
        )


def resolve_parameters(nb_path: Path, param_set: ParamSet, out_dir: Path) -> dict[str, Any]:
    """The overrides for one notebook: ``common`` (declared names only), its own section, and ``out_dir``.

    Raises :class:`ParameterError` for an undeclared name in the notebook's section, a value whose type
    differs from the declared one, a section that sets ``out_dir``, or a notebook without ``out_dir``.
    """
    stem = nb_path.stem
    declared = declared_parameters(nb_path)
    if "out_dir" not in declared:
        raise ParameterError(
            f"{stem}: the parameters cell must declare `out_dir: str = ...` "
            f"(the runner points it at the notebook's output folder)"
        )
    source = f"params/{param_set.source.name}" if param_set.source else "default"
    where = f"{stem} ({source})"
    own = param_set.per_notebook.get(stem, {})
    for name in own:
        if name in RUNNER_SET:
            raise ParameterError(
                f"{where}: {name!r} is set by the runner (--out); remove it from the params file"
            )
        if name not in declared:
            raise ParameterError(f"{where}: unknown parameter {name!r}{_unknown_hint(name, list(declared))}")
    merged = {k: v for k, v in param_set.common.items() if k in declared and k not in RUNNER_SET} | own
    params = {k: check_parameter(k, v, declared[k], where=where) for k, v in merged.items()}
    return params | {"out_dir": str(out_dir)}


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


def ipc_kernel_manager(socket_dir: str | os.PathLike[str] | None = None) -> type:
    """A jupyter_client kernel manager class that talks to its kernel over local (IPC) sockets, not TCP.

    ipykernel warns "Kernel is running over TCP without encryption" at every start over TCP; over IPC nothing
    leaves the machine, so there is nothing to warn about. The socket files go to ``socket_dir`` (default: the
    temporary folder) under a short name, as a Unix socket path must stay under about 100 characters. On
    Windows, which has no IPC transport, the kernel stays on TCP.
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    folder = str(socket_dir) if socket_dir is not None else tempfile.gettempdir()

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            if sys.platform != "win32":
                kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)
            if self.transport == "ipc" and "ip" not in kwargs:
                self.ip = os.path.join(folder, f"kernel-{uuid.uuid4().hex[:8]}")

    return IPCKernelManager


def current_python_kernel_manager(socket_dir: str | os.PathLike[str] | None = None) -> type:
    """A jupyter_client kernel manager class that starts ``sys.executable -m ipykernel_launcher``.

    No kernelspec lookup is involved, so a ``python3`` kernelspec from another environment cannot shadow this
    interpreter. The kernel also gets this checkout's package on ``PYTHONPATH``, so the notebooks import the
    same ``dmlbook`` as the runner. It connects over IPC, with its sockets in ``socket_dir``
    (:func:`ipc_kernel_manager`).
    """
    from jupyter_client.kernelspec import KernelSpec

    package_root = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)

    class CurrentPythonKernelManager(ipc_kernel_manager(socket_dir)):
        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name=f"Python ({sys.executable})",
                    language="python",
                    env={"PYTHONPATH": pythonpath},
                )
            return self._kernel_spec

    return CurrentPythonKernelManager


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
# Selection, summary and the command line
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


def _run_demo(notebooks_dir: Path) -> int:
    print(
        f"The book has no chapters yet (no {NOTEBOOK_GLOB} in {notebooks_dir}); "
        "running `python -m dmlbook demo` instead.",
        flush=True,
    )
    try:
        demo = importlib.import_module("dmlbook.experiments.demo")
    except ModuleNotFoundError as exc:
        if exc.name not in ("dmlbook.experiments", "dmlbook.experiments.demo"):
            raise
        print("error: dmlbook.experiments.demo is not available in this checkout either", file=sys.stderr)
        return 1
    return int(demo.main([]) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dmlbook book",
        description="Execute the notebooks with papermill into DIR/NN_name/ (executed .ipynb, .html, "
        "figures/, metrics.json) and print a summary. Exit status 1 if any notebook failed.",
    )
    parser.add_argument(
        "--params",
        default=DEFAULT_SET,
        metavar="SET",
        help="parameter set: 'default' (the notebooks' own values) or a notebooks/params/SET.yaml "
        "such as ci, real, full (default: %(default)s)",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NN", help="run only these notebooks (NN prefixes, e.g. 01 03)"
    )
    parser.add_argument(
        "--out", type=Path, default=OUT_DIR, metavar="DIR", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--notebooks-dir",
        type=Path,
        default=NOTEBOOKS_DIR,
        metavar="DIR",
        help="where NN_name.ipynb and params/ live (default: %(default)s)",
    )
    parser.add_argument(
        "--kernel",
        default=None,
        metavar="NAME",
        help="kernelspec name to run the notebooks with (default: this Python interpreter, "
        f"{sys.executable})",
    )
    return parser


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


def absolute_data_home() -> None:
    """Make a relative ``$DMLBOOK_DATA`` absolute (from the current directory): each notebook runs in its own
    folder, where ``DMLBOOK_DATA=../shared/data`` given at the repository root would point elsewhere."""
    home = os.environ.get("DMLBOOK_DATA", "").strip()
    if home and not Path(home).expanduser().is_absolute():
        os.environ["DMLBOOK_DATA"] = str(Path(home).expanduser().resolve())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dmlbook book ...``; returns the exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    notebooks_dir, out = args.notebooks_dir.resolve(), args.out.resolve()
    if not notebooks_dir.is_dir():
        what = "is not a folder" if notebooks_dir.exists() else "does not exist"
        print(f"error: --notebooks-dir {args.notebooks_dir} {what} (resolved: {notebooks_dir})", file=sys.stderr)
        return 2
    absolute_data_home()
    notebooks = find_notebooks(notebooks_dir)
    if not notebooks:
        given = [flag for flag, used in (("--only", bool(args.only)), ("--params", args.params != DEFAULT_SET)) if used]
        if given:  # the demo could honour neither
            print(f"error: no {NOTEBOOK_GLOB} in {notebooks_dir}, so {' and '.join(given)} cannot apply",
                  file=sys.stderr)
            return 2
        return _run_demo(notebooks_dir)
    try:
        import papermill  # noqa: F401  (fail early, with the fix, when the book extra is not installed)
        import yaml  # noqa: F401
    except ImportError as exc:
        print(
            f"error: {exc.name} is missing; install the book extra: pip install -e '.[book]'", file=sys.stderr
        )
        return 2
    try:
        param_set = load_param_set(args.params, notebooks_dir, [nb.stem for nb in notebooks])
        check_common(param_set, notebooks)
        selected = select_notebooks(notebooks, args.only)
    except BookConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = run_book(selected, param_set, out, kernel=args.kernel)
    print(f"\n{format_summary(results)}\n\noutputs: {out}", flush=True)
    return 1 if any(r.status == "failed" for r in results) else 0

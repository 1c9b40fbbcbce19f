"""``python -m dmlbook book``: the command line of the book runner (see ``notebooks/README.md``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .params import DEFAULT_SET, BookConfigError, check_common, load_param_set
from .runner import (
    NOTEBOOK_GLOB,
    NOTEBOOKS_DIR,
    OUT_DIR,
    find_notebooks,
    format_summary,
    run_book,
    select_notebooks,
)


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
        print(
            f"error: --notebooks-dir {args.notebooks_dir} {what} (resolved: {notebooks_dir})", file=sys.stderr
        )
        return 2
    absolute_data_home()
    notebooks = find_notebooks(notebooks_dir)
    if not notebooks:
        given = [
            flag
            for flag, used in (("--only", bool(args.only)), ("--params", args.params != DEFAULT_SET))
            if used
        ]
        if given:  # the demo could honour neither
            print(
                f"error: no {NOTEBOOK_GLOB} in {notebooks_dir}, so {' and '.join(given)} cannot apply",
                file=sys.stderr,
            )
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

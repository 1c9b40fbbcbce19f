"""Execute one chapter of the book with the ``ci`` parameters and hand its ``metrics.json`` to the test.

Each chapter has its own test file here (``test_NN_name.py``) that calls ``run_chapter("NN")`` and asserts on
the metrics: values in range, and the direction of each claim where the ``ci`` size supports it. A notebook
that fails to execute fails its test with papermill's error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmlbook import book

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def run_chapter(prefix: str, out: Path, params: str = "ci") -> dict:
    """Run ``notebooks/<prefix>_*.ipynb`` with the ``params`` set into ``out``; return its metrics."""
    notebooks = book.select_notebooks(book.find_notebooks(NOTEBOOKS), [prefix])
    param_set = book.load_param_set(params, NOTEBOOKS, [nb.stem for nb in book.find_notebooks(NOTEBOOKS)])
    (result,) = book.run_book(notebooks, param_set, out, kernel=None)
    if result.status != "ok":
        pytest.fail(f"{result.stem} {result.status}: {result.note}")
    return json.loads((out / notebooks[0].stem / "metrics.json").read_text())


@pytest.fixture
def chapter(tmp_path):
    """``chapter("01")`` -> the metrics of chapter 01 executed at the ci parameters."""
    return lambda prefix, params="ci": run_chapter(prefix, tmp_path, params)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.notebook)

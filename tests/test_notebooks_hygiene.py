"""Notebooks are stored clean and follow the parameters-cell convention (see notebooks/README.md).

Checked for every ``notebooks/NN_*.ipynb`` and every fixture notebook: no outputs or execution counts, none of
papermill's traces, exactly one cell tagged ``parameters`` whose names are all annotated literals including
``out_dir``, and the next code cell calling ``notebook_parameters(globals())``. Each check is also run on a
fabricated dirty notebook, so these tests can fail.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dmlbook import book

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(book.NOTEBOOK_GLOB)) + sorted(
    (ROOT / "tests" / "fixtures" / "book").glob("*.ipynb")
)
STRIPPED_CELL_KEYS = {"execution", "ExecuteTime", "collapsed", "scrolled", "heading_collapsed", "hidden"}
GUARD_CALL = "notebook_parameters(globals())"


def _tagged(nb, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]


def storage_problems(nb) -> list[str]:
    """Outputs, execution counts and execution metadata that must not be committed."""
    problems = [
        f"notebook metadata has {k!r}" for k in ("papermill", "widgets", "signature") if k in nb.metadata
    ]
    if "language" not in nb.metadata.get("kernelspec", {}):
        problems.append("metadata.kernelspec.language is missing (papermill needs it)")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            problems.append(f"cell {i} has execution_count {cell.execution_count}")
        problems += [
            f"cell {i} metadata has {k!r}" for k in STRIPPED_CELL_KEYS & set(cell.get("metadata", {}))
        ]
    problems += [
        f"cell {i} is papermill's injected-parameters cell" for i in _tagged(nb, "injected-parameters")
    ]
    return problems


def parameter_problems(nb, path: Path) -> list[str]:
    """Exactly one code cell tagged ``parameters``, annotated, declaring out_dir, followed by the guard."""
    tagged = _tagged(nb, "parameters")
    if len(tagged) != 1:
        return [f"{len(tagged)} cells are tagged 'parameters'; expected exactly 1"]
    index = tagged[0]
    if nb.cells[index].cell_type != "code":
        return ["the 'parameters' cell is not a code cell"]
    import papermill

    declared = papermill.inspect_notebook(str(path))
    problems = [
        f"parameter {n!r} has no type annotation (write `{n}: T = value`)"
        for n, info in declared.items()
        if info["inferred_type_name"] == "None"
    ]
    if "out_dir" not in declared:
        problems.append("no `out_dir: str = ...` parameter")
    # papermill skips a line it cannot parse (with only a log message): every assignment must be one it read
    assigned = [
        ast.unparse(t)
        for node in ast.parse(nb.cells[index].source).body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
    ]
    problems += [
        f"papermill cannot parse the line of parameter {n!r} (a comment it misreads?)"
        for n in assigned
        if n not in declared
    ]
    following = [c for c in nb.cells[index + 1 :] if c.cell_type == "code"][:1]
    if not following or GUARD_CALL not in following[0].source:
        problems.append(f"the code cell after the parameters cell must call {GUARD_CALL}")
    return problems


def _fabricated_dirty_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    first = nbformat.v4.new_code_cell(
        "x = 1", execution_count=1, outputs=[nbformat.v4.new_output("stream", text="hi\n")]
    )
    first.metadata["tags"] = ["parameters"]
    second = nbformat.v4.new_code_cell("y: int = 2")
    second.metadata["tags"] = ["parameters"]
    nb.cells = [first, second]
    nbformat.write(nb, path)
    return path


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 3  # the fixtures at least; chapters join as they are written


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    assert storage_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_convention(path):
    assert parameter_problems(nbformat.read(path, as_version=4), path) == []


def test_checks_fail_on_a_dirty_notebook(tmp_path):
    path = _fabricated_dirty_notebook(tmp_path / "99_dirty.ipynb")
    nb = nbformat.read(path, as_version=4)
    assert storage_problems(nb) == ["cell 0 has outputs", "cell 0 has execution_count 1"]
    assert parameter_problems(nb, path) == ["2 cells are tagged 'parameters'; expected exactly 1"]
    nb.cells = nb.cells[:1]
    assert parameter_problems(nb, path) == [
        "parameter 'x' has no type annotation (write `x: T = value`)",
        "no `out_dir: str = ...` parameter",
        f"the code cell after the parameters cell must call {GUARD_CALL}",
    ]
    # a comment papermill misreads drops the parameter silently
    nb.cells[0].source = 'steps: int = 4  # points on the curve (= epochs)\nout_dir: str = "x"'
    nbformat.write(nb, path)
    assert (
        "papermill cannot parse the line of parameter 'steps' (a comment it misreads?)"
        in parameter_problems(nb, path)
    )


@pytest.mark.skipif(importlib.util.find_spec("nbstripout") is None, reason="nbstripout is not installed")
def test_nbstripout_verify(tmp_path):
    """``nbstripout --verify`` (the CI gate) over all notebooks plus a dirty one: only that one is flagged."""
    dirty = _fabricated_dirty_notebook(tmp_path / "99_dirty.ipynb")
    cmd = [sys.executable, "-m", "nbstripout", "--verify", *map(str, NOTEBOOKS), str(dirty)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    flagged = [line for line in (done.stdout + done.stderr).splitlines() if "would have stripped" in line]
    assert done.returncode == 1
    assert flagged == [f"Dry run: would have stripped {dirty}"]

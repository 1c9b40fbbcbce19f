import subprocess
import sys

import pytest

from dmlbook.data._optional import require


def test_core_import_needs_only_torch_and_numpy():
    code = (
        "import sys, numpy, torch; before = set(sys.modules); import dmlbook.data, dmlbook.data.cli; "
        "print(sorted(m for m in ('scipy', 'PIL', 'sklearn', 'tqdm') if m in set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_optional_dependency_message():
    with pytest.raises(ImportError, match=r"reading things needs .*pip install dmlbook\[train\]"):
        require("dmlbook_no_such_module", "reading things")


def test_damaged_file_error_lives_with_the_other_data_errors():
    import ast
    from importlib import import_module
    from pathlib import Path

    names = ("dmlbook.data", "dmlbook.data.dataset", "dmlbook.data.download", "dmlbook.data.errors")
    data, dataset, download, errors = (import_module(name) for name in names)
    # errors.py imports nothing from the package, so every data module can raise DamagedFileError without a cycle
    tree = ast.parse(Path(errors.__file__).read_text(encoding="utf-8"))
    own = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("dmlbook"))
    ]
    assert own == []
    assert (
        data.DamagedFileError
        is errors.DamagedFileError
        is dataset.DamagedFileError
        is download.DamagedFileError
    )
    assert data.DamagedFileError.__module__ == "dmlbook.data.errors" and issubclass(
        data.DamagedFileError, ValueError
    )
    assert data.verify_files is download.verify_files and {"DamagedFileError", "verify_files"} <= set(
        data.__all__
    )

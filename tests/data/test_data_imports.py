import subprocess
import sys

import pytest

from dmlbook.data._optional import require


def test_core_import_needs_only_torch_and_numpy():
    code = ("import sys, numpy, torch; before = set(sys.modules); import dmlbook.data, dmlbook.data.cli; "
            "print(sorted(m for m in ('scipy', 'PIL', 'sklearn', 'tqdm') if m in set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_optional_dependency_message():
    with pytest.raises(ImportError, match=r"reading things needs .*pip install dmlbook\[train\]"):
        require("dmlbook_no_such_module", "reading things")

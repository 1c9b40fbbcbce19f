#!/usr/bin/env python3
"""dmlbook's two entry points for a fresh machine: ``python3 run.py book`` and ``python3 run.py test``.

Each one creates a virtual environment in ``.venv`` (once), installs PyTorch and the package with the
extras it needs (again only when ``pyproject.toml`` changed), then runs:

* ``book``: ``python -m dmlbook book`` (every notebook at its default parameters, into ``build/book``);
* ``test``: the whole test suite, ``python -m pytest`` on two workers.

Arguments after the command are passed on (``python3 run.py book --params ci``,
``python3 run.py test -k losses``). Set ``DMLBOOK_TORCH`` to choose the PyTorch requirement
(default ``torch==2.13.0``; on a machine with a GPU, e.g. ``DMLBOOK_TORCH="torch==2.13.0 --index-url ..."``).
Only the standard library is used here, so any Python >= 3.10 can run it.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("DMLBOOK_VENV", ROOT / ".venv"))
EXTRAS = {"book": "book", "test": "test"}


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(cmd: list[str]) -> None:
    print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def ensure_env(extra: str) -> Path:
    """Create ``.venv`` and install torch + ``dmlbook[extra]`` unless the stamp says it is current."""
    if sys.version_info < (3, 10):  # noqa: UP036 -- run.py is what an older Python runs first: it must say why
        sys.exit(f"dmlbook needs Python >= 3.10; this is {sys.version.split()[0]}")
    py = _venv_python()
    if not py.exists():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    torch_req = os.environ.get("DMLBOOK_TORCH", "torch==2.13.0")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + torch_req.encode()).hexdigest()[:16]
    stamp = VENV / f".dmlbook-{extra}-{digest}"
    if not stamp.exists():
        pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        # torch first and on its own, so that nothing later can pull a different (CUDA) build
        _run(pip + shlex.split(torch_req))
        _run(pip + ["-e", f".[{extra}]"])
        stamp.touch()
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    py = str(ensure_env(EXTRAS[command]))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if command == "book":
        cmd = [py, "-m", "dmlbook", "book", *rest]
    else:
        cmd = [py, "-m", "pytest", "-n", os.environ.get("DMLBOOK_TEST_WORKERS", "2"), *rest]
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode  # its exit status is ours


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

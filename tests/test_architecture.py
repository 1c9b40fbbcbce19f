"""The layout's rules, checked on the source: the library's core never imports the book's experiments, and the
project never points at material outside it.

Core: the modules and packages in :data:`CORE`. Book experiments: ``dmlbook.experiments`` and the experiment
modules that move into it (:data:`EXPERIMENTS`). Every core ``.py`` file is parsed with :mod:`ast`; absolute
imports, relative imports (resolved against the file's package) and ``importlib.import_module("...")`` /
``__import__("...")`` calls with a constant name all count.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dmlbook"
CORE = (
    "distances",
    "mining",
    "losses",
    "attention",
    "synthesis",
    "models",
    "data",
    "evaluation",
    "train",
    "viz",
    "diagnostics",
    "_checks",
)
OPTIONAL = frozenset({"diagnostics"})  # core modules that a refactoring is still creating
EXPERIMENTS = ("experiments", "analysis", "outliers", "lesions", "spoken_words", "report", "demo")
FORBIDDEN = tuple(f"dmlbook.{name}" for name in EXPERIMENTS)
# what the project must not mention (spelt in two parts so that this file does not mention it)
OUTSIDE_DOCS = "shared" + "/docs"
PROJECT_PARTS = ("dmlbook", "tests", "notebooks", "benchmarks", "data", "docs", "README.md")
TEXT_SUFFIXES = frozenset({".py", ".ipynb", ".md", ".rst", ".txt", ".yaml", ".yml", ".toml", ".cfg", ".json"})


def module_name(path: Path, root: Path) -> str:
    """``root/dmlbook/data/skin.py`` -> ``dmlbook.data.skin``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """Every module that ``source`` (the code of ``module``) imports: ``(line, absolute dotted name)``.

    ``from X import a`` gives ``X`` and ``X.a`` (``a`` may be a submodule); relative imports are resolved with
    ``module`` (a package's ``__init__`` resolves ``.`` to the package itself).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 > len(package):
                    continue  # beyond the top-level package: not an import of ours
                base = package[: len(package) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.append((node.lineno, stem))
            found += [(node.lineno, f"{stem}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                target = node.args[0].value
                if target.startswith("."):  # import_module(".x", __package__): relative to this package
                    dots = len(target) - len(target.lstrip("."))
                    target = ".".join(package[: len(package) - (dots - 1)] + [target.lstrip(".")])
                found.append((node.lineno, target))
    return found


def forbidden_imports(files: list[Path], root: Path) -> list[str]:
    """``"path:line imports name"`` for every import statement of a book-experiment module in ``files``."""
    bad = []
    for path in files:
        module = module_name(path, root)
        source = path.read_text(encoding="utf-8")
        seen = set()
        for line, name in imported_modules(source, module, is_package=path.name == "__init__.py"):
            if line not in seen and any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                seen.add(line)
                bad.append(f"{path.relative_to(root)}:{line} imports {name}")
    return bad


def core_files(package: Path) -> list[Path]:
    files = []
    for name in CORE:
        module, folder = package / f"{name}.py", package / name
        if module.is_file():
            files.append(module)
        elif folder.is_dir():
            files += sorted(folder.rglob("*.py"))
        elif name not in OPTIONAL:
            raise AssertionError(f"core module dmlbook.{name} is neither {module} nor {folder}/")
    return files


def test_core_never_imports_the_book_experiments():
    files = core_files(PACKAGE)
    assert len(files) > 20  # the walk found the core
    bad = forbidden_imports(files, ROOT)
    assert not bad, (
        "the core imports the book's experiments (the dependency goes the other way):\n" + "\n".join(bad)
    )


def test_importing_the_core_loads_no_experiment():
    """At run time too: importing every core module (in a fresh interpreter) loads no book-experiment module,
    also not through a module outside the core."""
    names = [n for n in CORE if n not in OPTIONAL or (PACKAGE / f"{n}.py").exists() or (PACKAGE / n).is_dir()]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module('dmlbook.' + name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing the core loaded {out.stdout.strip()}"


def _fake_module(root: Path, module: str, code: str) -> Path:
    """``code`` written as the file of the dotted ``module`` under ``root``."""
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)
    return path


@pytest.mark.parametrize(
    "module,code",
    [
        ("dmlbook.models.fake", "import dmlbook.experiments.spoken_words\n"),
        ("dmlbook.models.fake", "from dmlbook.experiments import analysis\n"),
        ("dmlbook.models.fake", "from dmlbook import analysis\n"),
        ("dmlbook.models.fake", "from .. import lesions\n"),
        ("dmlbook.models.fake", "from ..experiments.outliers import train_noisy\n"),
        ("dmlbook.models.fake", "def f():\n    from ..report import x\n"),
        ("dmlbook.fake", "from . import demo\n"),
        ("dmlbook.fake", "import importlib\nimportlib.import_module('dmlbook.experiments')\n"),
        ("dmlbook.viz.fake", "import importlib\nimportlib.import_module('..analysis', __package__)\n"),
        ("dmlbook.data.fake", "from ...dmlbook import x\nfrom .. import spoken_words\n"),
    ],
)
def test_the_rule_catches_a_new_import(tmp_path: Path, module: str, code: str):
    """A fake core module with one forbidden import is caught (the rule can fail)."""
    path = _fake_module(tmp_path, module, code)
    assert len(forbidden_imports([path], tmp_path)) == 1


@pytest.mark.parametrize(
    "module,code",
    [
        ("dmlbook.data.fake", "from .synthetic_lesions import make_lesions\n"),
        ("dmlbook.data.fake", "from . import lesions\n"),  # dmlbook.data.lesions, not dmlbook.lesions
        ("dmlbook.data.fake", "from . import lesions_of_mine\n"),
        ("dmlbook.fake", "from .reporting import x\nimport demo_tools\n"),
        ("dmlbook.viz.fake", "from dmlbook.evaluation import knn\n"),
    ],
)
def test_the_rule_lets_other_imports_pass(tmp_path: Path, module: str, code: str):
    path = _fake_module(tmp_path, module, code)
    assert forbidden_imports([path], tmp_path) == []


def mentions(root: Path, text: str) -> list[str]:
    """``"path:line"`` for every line of the project's text files (:data:`PROJECT_PARTS`) containing ``text``."""
    hits = []
    for part in PROJECT_PARTS:
        top = root / part
        paths = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in paths:
            if not path.is_file() or path.suffix not in TEXT_SUFFIXES or "__pycache__" in path.parts:
                continue
            for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if text in line:
                    hits.append(f"{path.relative_to(root)}:{i}")
    return hits


def test_the_project_does_not_point_outside_itself():
    """Papers are cited; the working notes next to the project are not part of it."""
    hits = mentions(ROOT, OUTSIDE_DOCS)
    assert not hits, f"{len(hits)} mentions of {OUTSIDE_DOCS!r} (cite the paper instead):\n" + "\n".join(hits)


def test_the_mention_check_finds_a_mention(tmp_path: Path):
    (tmp_path / "dmlbook").mkdir()
    (tmp_path / "dmlbook" / "x.py").write_text(f'"""see {OUTSIDE_DOCS}/algorithms.md"""\n')
    (tmp_path / "README.md").write_text("nothing here\n")
    assert mentions(tmp_path, OUTSIDE_DOCS) == ["dmlbook/x.py:1"]

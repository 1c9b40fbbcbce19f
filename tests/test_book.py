"""The book runner (``python -m dmlbook book``), the notebook-side parameter guard and the figure helpers.

Tests marked ``notebook`` start a Jupyter kernel on the fixture notebooks in ``tests/fixtures/book``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from dmlbook import book

FIXTURES = Path(__file__).parent / "fixtures" / "book"
REPO = Path(__file__).resolve().parents[1]


def run_book(capsys, *args: str) -> tuple[int, str, str]:
    code = book.main(["--notebooks-dir", str(FIXTURES), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_data(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("DMLBOOK_DATA", str(root))
    return root


# ---------------------------------------------------------------- parameter types and the notebook-side guard


def test_check_parameter_accepts_int_for_float_only():
    assert book.check_parameter("lr", 1, float) == 1.0 and isinstance(
        book.check_parameter("lr", 1, float), float
    )
    assert book.check_parameter("n", 3, int) == 3
    for value, expected in [(1.5, int), (True, int), (1, bool), ("3", int), (True, float), (3, str)]:
        with pytest.raises(book.ParameterError, match="must be"):
            book.check_parameter("p", value, expected)


def test_check_parameter_error_names_parameter_and_types():
    with pytest.raises(book.ParameterError) as info:
        book.check_parameter("epochs", "abc", int, where="01_x")
    assert str(info.value) == "01_x: parameter 'epochs' must be int (as declared); got 'abc' of type str"


def _namespace(**values):
    ns = {"__annotations__": {"epochs": int, "lr": float, "name": str, "fast": bool, "sizes": list[int]}}
    return ns | {"epochs": 3, "lr": 0.1, "name": "x", "fast": False, "sizes": [1]} | values


def test_notebook_parameters_returns_values_and_coerces_float():
    ns = _namespace(lr=1)
    params = book.notebook_parameters(ns)
    assert params == {"epochs": 3, "lr": 1.0, "name": "x", "fast": False, "sizes": [1]}
    assert isinstance(ns["lr"], float)


def test_notebook_parameters_rejects_wrong_type():
    with pytest.raises(book.ParameterError, match="'epochs' must be int.*'abc'"):
        book.notebook_parameters(_namespace(epochs="abc"))


def test_notebook_parameters_rejects_unknown_injected_name():
    history = [
        "",
        "# Parameters: mine\nepochs: int = 3",
        "# Parameters\nepoch = 5\nlr = 0.2\n",
        "params = ...",
    ]
    with pytest.raises(book.ParameterError, match=r"unknown parameter 'epoch'.*did you mean 'epochs'"):
        book.notebook_parameters(_namespace(epoch=5, _ih=history))


def test_notebook_parameters_ignores_parameters_cell_and_other_cells():
    history = ["# Parameters\nepochs: int = 3", "x = 1", "# Parameters\nepochs = 5\n"]
    assert book.notebook_parameters(_namespace(epochs=5, x=1, _ih=history))["epochs"] == 5


def test_notebook_parameters_needs_annotations():
    with pytest.raises(book.ParameterError, match="annotated literals"):
        book.notebook_parameters({"epochs": 3})


def test_save_metrics_converts_scalars(tmp_path):
    np = pytest.importorskip("numpy")
    import torch

    path = book.save_metrics(
        tmp_path / "a", acc=np.float32(0.5), loss=torch.tensor(2.0), nested={"k": (1, 2)}
    )
    assert json.loads(path.read_text()) == {"acc": 0.5, "loss": 2.0, "nested": {"k": [1, 2]}}
    with pytest.raises(ValueError, match="at least one metric"):
        book.save_metrics(tmp_path)


# ---------------------------------------------------------------- parameter sets, selection, data, summary


def test_load_param_set_structure():
    ps = book.load_param_set("ci", FIXTURES, ["01_metrics", "02_fails", "03_needs_data"])
    assert ps.common["n"] == 4 and ps.per_notebook["01_metrics"] == {"scale": 2}
    assert ps.requires == {"03_needs_data": ["tiny_set"]}
    assert book.load_param_set("default", FIXTURES, []).per_notebook == {}


def test_load_param_set_errors(tmp_path):
    with pytest.raises(book.BookConfigError, match=r"--params 'nope'.*available: default, ci"):
        book.load_param_set("nope", FIXTURES, [])
    with pytest.raises(book.BookConfigError, match="no notebook 03_needs_data.ipynb"):
        book.load_param_set("ci", FIXTURES, ["01_metrics", "02_fails"])
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "default.yaml").write_text("common: {n: 1}\n")
    with pytest.raises(book.BookConfigError, match="may only hold `requires:`"):
        book.load_param_set("default", tmp_path, [])
    (tmp_path / "params" / "x.yaml").write_text("01_a: {requires: cub}\n")
    with pytest.raises(book.BookConfigError, match="requires must be a list"):
        book.load_param_set("x", tmp_path, ["01_a"])


def test_resolve_parameters_applies_common_and_own_section(tmp_path):
    ps = book.load_param_set("ci", FIXTURES, ["01_metrics", "02_fails", "03_needs_data"])
    params = book.resolve_parameters(FIXTURES / "01_metrics.ipynb", ps, tmp_path)
    assert params == {"n": 4, "scale": 2.0, "out_dir": str(tmp_path)}
    assert book.resolve_parameters(FIXTURES / "02_fails.ipynb", ps, tmp_path) == {"out_dir": str(tmp_path)}


@pytest.mark.parametrize(
    ("set_name", "message"),
    [
        (
            "unknown_name",
            (
                r"01_metrics \(params/unknown_name.yaml\): unknown parameter 'scael' "
                r"\(did you mean 'scale'\?\); declared parameters: label, n, out_dir, scale"
            ),
        ),
        ("wrong_type", r"01_metrics \(params/wrong_type.yaml\): parameter 'n' must be int .*got 'three'"),
    ],
)
def test_resolve_parameters_rejects_bad_sections(tmp_path, set_name, message):
    ps = book.load_param_set(set_name, FIXTURES, ["01_metrics", "02_fails", "03_needs_data"])
    with pytest.raises(book.ParameterError, match=message):
        book.resolve_parameters(FIXTURES / "01_metrics.ipynb", ps, tmp_path)


def test_resolve_parameters_rejects_out_dir_override(tmp_path):
    ps = book.ParamSet(name="x", source=None, per_notebook={"01_metrics": {"out_dir": "/tmp"}})
    with pytest.raises(book.ParameterError, match="'out_dir' is set by the runner"):
        book.resolve_parameters(FIXTURES / "01_metrics.ipynb", ps, tmp_path)


@pytest.mark.parametrize("set_name", ["unknown_name", "wrong_type"])
def test_cli_bad_parameters_fail_before_execution(capsys, tmp_path, set_name):
    code, out, err = run_book(capsys, "--params", set_name, "--only", "01", "--out", str(tmp_path))
    assert code == 1
    assert "error: 01_metrics" in err and "failed" in out
    assert not (tmp_path / "01_metrics").exists()  # nothing was executed


def test_cli_usage_errors(capsys, tmp_path):
    assert run_book(capsys, "--params", "nope", "--out", str(tmp_path))[0] == 2
    code, _, err = run_book(capsys, "--only", "07", "--out", str(tmp_path))
    assert code == 2 and "--only 07: no such notebook" in err


def test_select_notebooks_by_prefix():
    nbs = book.find_notebooks(FIXTURES)
    assert [p.stem for p in nbs] == ["01_metrics", "02_fails", "03_needs_data"]
    assert [p.stem for p in book.select_notebooks(nbs, ["01", "03"])] == ["01_metrics", "03_needs_data"]
    assert [p.stem for p in book.select_notebooks(nbs, ["02_fails"])] == ["02_fails"]
    assert book.select_notebooks(nbs, None) == nbs


def test_missing_data_skip_message(capsys, tmp_path, no_data):
    code, out, _ = run_book(capsys, "--params", "ci", "--only", "03", "--out", str(tmp_path / "out"))
    assert code == 0
    assert "skipped 03_needs_data: needs dataset(s) tiny_set" in out
    assert (
        str(no_data / "tiny_set") in out and "data/README.md" in out and "python -m dmlbook data list" in out
    )
    assert "03_needs_data  skipped" in out and "missing data: tiny_set" in out
    assert not (tmp_path / "out" / "03_needs_data").exists()


def test_missing_data_counts_empty_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.bin").write_bytes(b"1")
    assert book.missing_data(["empty", "full", "absent"], tmp_path) == [
        tmp_path / "empty",
        tmp_path / "absent",
    ]


def test_summary_flattens_and_shortens():
    results = [
        book.Result("01_a", "ok", 1.234, {"recall": {"at_1": 0.123456}, "curve": [1, 2], "n": 3}),
        book.Result("02_long_name", "failed", 0.5, note="E: " + "x" * 200),
    ]
    text = book.format_summary(results)
    assert "01_a          ok           1.2  recall.at_1=0.1235  n=3" in text
    assert "curve" not in text and "..." in text


def test_no_chapters_runs_demo(capsys, tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("dmlbook.experiments.demo")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "dmlbook.experiments.demo", fake)
    assert book.main(["--notebooks-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert calls == [[]] and "no chapters yet" in capsys.readouterr().out


@pytest.mark.parametrize("args", [[], ["--only", "01"], ["--params", "ci"]])
def test_missing_notebooks_dir_is_an_error(capsys, tmp_path, monkeypatch, args):
    calls = []
    fake = types.ModuleType("dmlbook.experiments.demo")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "dmlbook.experiments.demo", fake)
    missing = tmp_path / "no_such_folder"
    assert book.main(["--notebooks-dir", str(missing), "--out", str(tmp_path / "o"), *args]) == 2
    assert f"error: --notebooks-dir {missing} does not exist" in capsys.readouterr().err
    assert calls == [] and not (tmp_path / "o").exists()  # no demo, nothing written


@pytest.mark.parametrize(("args", "flags"), [(["--only", "01"], "--only"), (["--params", "ci"], "--params")])
def test_no_chapters_with_a_selection_is_an_error(capsys, tmp_path, monkeypatch, args, flags):
    monkeypatch.setitem(sys.modules, "dmlbook.experiments.demo", None)
    assert book.main(["--notebooks-dir", str(tmp_path), "--out", str(tmp_path / "o"), *args]) == 2
    assert f"so {flags} cannot apply" in capsys.readouterr().err


def test_misspelt_common_name_stops_the_book(capsys, tmp_path):
    ps = book.load_param_set("common_typo", FIXTURES, [p.stem for p in book.find_notebooks(FIXTURES)])
    with pytest.raises(
        book.BookConfigError,
        match=r"common: unknown parameter 'nn': no notebook declares it "
        r"\(did you mean 'n'\?\); declared parameters: label, n, scale",
    ):
        book.check_common(ps, book.find_notebooks(FIXTURES))
    code, _, err = run_book(capsys, "--params", "common_typo", "--out", str(tmp_path))
    assert code == 2 and "unknown parameter 'nn'" in err
    assert not any(tmp_path.iterdir())  # refused before any notebook ran
    # a name that some notebook declares is fine, even when the selected one does not declare it
    book.check_common(
        book.ParamSet("x", None, common={"n": 1}),
        [FIXTURES / "02_fails.ipynb", FIXTURES / "01_metrics.ipynb"],
    )
    with pytest.raises(book.BookConfigError, match="'out_dir' is set by the runner"):
        book.check_common(book.ParamSet("x", None, common={"out_dir": "/tmp"}), book.find_notebooks(FIXTURES))


def test_no_chapters_and_no_demo_fails_clearly(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dmlbook.experiments.demo", None)  # makes the import fail
    assert book.main(["--notebooks-dir", str(tmp_path)]) == 1
    assert "dmlbook.experiments.demo is not available" in capsys.readouterr().err


@pytest.mark.parametrize("set_name", ["ci", "real", "full"])
def test_repo_param_sets_are_valid(set_name):
    stems = [p.stem for p in book.find_notebooks(book.NOTEBOOKS_DIR)]
    ps = book.load_param_set(set_name, book.NOTEBOOKS_DIR, stems)
    assert ps.source == book.NOTEBOOKS_DIR / "params" / f"{set_name}.yaml"
    book.check_common(ps, book.find_notebooks(book.NOTEBOOKS_DIR))  # every common name is declared somewhere
    for nb in book.find_notebooks(book.NOTEBOOKS_DIR):  # vacuous until chapters exist
        book.resolve_parameters(nb, ps, Path("/tmp/out"))


# ---------------------------------------------------------------- executing notebooks


@pytest.mark.notebook
def test_book_runs_notebook_into_its_folder(capsys, tmp_path, no_data):
    code, out, _ = run_book(capsys, "--params", "ci", "--only", "01", "--out", str(tmp_path))
    folder = tmp_path / "01_metrics"
    assert code == 0, out
    for name in (
        "01_metrics.ipynb",
        "01_metrics.html",
        "metrics.json",
        "figures/line.png",
        "figures/line.svg",
    ):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["total"] == 8.0 and metrics["scale_type"] == "float"  # n=4 from common, scale=2 -> 2.0
    assert Path(metrics["python"]).resolve() == Path(sys.executable).resolve()  # this venv's interpreter
    assert "01_metrics  ok" in out and "total=8  label=tiny" in out


@pytest.mark.notebook
def test_console_shows_a_progress_line_and_a_result_per_chapter(capfd, tmp_path, no_data):
    # the kernels talk over IPC: ipykernel's "running over TCP without encryption" warning must not appear
    code = book.main(
        ["--notebooks-dir", str(FIXTURES), "--params", "ci", "--only", "01", "02", "--out", str(tmp_path)]
    )
    out, err = capfd.readouterr()  # file descriptors: the kernel processes write to them directly
    assert code == 1, out + err
    assert "Kernel is running over TCP without encryption" not in out + err
    per_chapter = out.split("\n\nnotebook")[0].splitlines()
    assert per_chapter == [
        f"[1/2] 01_metrics (ci) -> {tmp_path / '01_metrics'}",
        per_chapter[1],
        f"[2/2] 02_fails (ci) -> {tmp_path / '02_fails'}",
        per_chapter[3],
    ]
    assert per_chapter[1].startswith("    ok in ") and per_chapter[3].startswith("    failed in ")


@pytest.mark.notebook
def test_book_failure_gives_nonzero_exit(capsys, tmp_path, no_data):
    code, out, _ = run_book(capsys, "--only", "02", "03", "--params", "ci", "--out", str(tmp_path))
    assert code == 1
    assert "02_fails       failed" in out and "RuntimeError: boom from the failing fixture" in out
    assert "03_needs_data  skipped" in out
    assert (tmp_path / "02_fails" / "02_fails.html").is_file()  # the executed copy shows where it failed


def test_unknown_kernel_fails_clearly(capsys, tmp_path):
    code, out, _ = run_book(capsys, "--only", "02", "--kernel", "no_such_kernel_xyz", "--out", str(tmp_path))
    assert code == 1 and "NoSuchKernel" in out


def _plain_papermill(tmp_path: Path, **parameters):
    import papermill

    return papermill.execute_notebook(
        str(FIXTURES / "01_metrics.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={"out_dir": str(tmp_path)} | parameters,
        cwd=str(FIXTURES),
        progress_bar=False,
        kernel_manager_class=book.current_python_kernel_manager(),
    )


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"n": "abc"}, "parameter 'n' must be int (as declared); got 'abc'"),
        ({"nn": 5}, "unknown parameter 'nn' was passed (did you mean 'n'?)"),
    ],
)
def test_guard_stops_plain_papermill(tmp_path, parameters, message):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as info:
        _plain_papermill(tmp_path, **parameters)
    assert info.value.ename == "ParameterError" and message in info.value.evalue
    assert info.value.exec_count == 3  # the cell right after the parameters and injected cells
    assert not (tmp_path / "metrics.json").exists()


# ---------------------------------------------------------------- figure helpers


def test_core_does_not_import_matplotlib():
    code = "import sys, dmlbook, dmlbook.book, dmlbook.viz; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_method_colors_are_stable_and_distinct():
    from dmlbook import viz

    known = [
        "none",
        "batch_hard",
        "semi_hard",
        "multi_similarity",
        "osm",
        "osm_caa",
        "contrastive",
        "triplet",
        "lifted",
        "ranked_list",
    ]
    colors = [viz.method_color(m) for m in known]
    assert len(set(colors)) == len(known) and set(colors) <= set(viz.PALETTE)
    assert viz.method_color("Multi-Similarity") == viz.method_color("multi_similarity")
    assert viz.method_color("my new loss") == viz.method_color("my_new_loss") in viz.PALETTE
    script = "from dmlbook import viz; print(viz.method_color('my_new_loss'))"  # not tied to hash seeds
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert other.stdout.strip() == viz.method_color("my_new_loss")
    with pytest.raises(ValueError, match="name must be a non-empty method name"):
        viz.method_color("")


def test_palette_is_seaborn_colorblind():
    from dmlbook import viz

    # seaborn.color_palette("colorblind").as_hex() (seaborn 0.13), hard-coded so seaborn stays optional
    assert viz.PALETTE[:3] == ("#0173b2", "#de8f05", "#029e73") and len(set(viz.PALETTE)) == 10


def test_setup_notebook_and_savefig(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dmlbook import viz

    with matplotlib.rc_context():
        viz.setup_notebook(font_scale=2.0)
        assert matplotlib.rcParams["font.size"] == 22
        assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"] == list(viz.PALETTE)
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        paths = viz.savefig(fig, "curve", tmp_path / "nb")
        plt.close(fig)
    assert paths == [tmp_path / "nb" / "figures" / "curve.png", tmp_path / "nb" / "figures" / "curve.svg"]
    assert all(p.stat().st_size > 0 for p in paths)
    for bad in ("curve.png", "a/b", ""):
        with pytest.raises(ValueError, match="name must be a file stem"):
            viz.savefig(fig, bad, tmp_path)
    with pytest.raises(ValueError, match="figure_format must be one of"):
        viz.setup_notebook(figure_format="jpg")


def test_relative_data_home_is_made_absolute_for_the_notebooks(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DMLBOOK_DATA", "shared/data")  # notebooks run in their own folder, not here
    book.absolute_data_home()
    assert Path(os.environ["DMLBOOK_DATA"]) == (tmp_path / "shared" / "data").resolve()
    book.absolute_data_home()  # an absolute path is kept as it is
    assert Path(os.environ["DMLBOOK_DATA"]) == (tmp_path / "shared" / "data").resolve()

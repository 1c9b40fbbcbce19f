"""benchmarks/device_check.py without its heavy parts: argument parsing, time limits, failure handling and the
report, on trivial parts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("device_check", None)


def trivial_parts(dc):
    def fine(ctx, limit):
        assert 0 < limit <= 30 and ctx.out.is_dir()
        return dc.PartResult("fine", "passed", note="3 widgets", figures={"widgets": 3, "device": ctx.cuda})

    def broken(ctx, limit):
        raise RuntimeError("the widget fell over")

    def absent(ctx, limit):
        raise dc.Skip("no widget here")

    def slow(ctx, limit):
        dc.run_command(
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"], 1.0
        )

    return [
        dc.Part("fine", "a part that passes", fine, 30.0),
        dc.Part("broken", "a part that raises", broken, 30.0),
        dc.Part("absent", "a part that does not apply", absent, 30.0),
        dc.Part("slow", "a part past its limit", slow, 30.0),
    ]


def test_report_of_trivial_parts(dc, tmp_path, capsys):
    status = dc.main(["--out", str(tmp_path / "report"), "--device", "cpu"], parts=trivial_parts(dc))
    assert status == 0  # failures are reported, not raised
    report = json.loads((tmp_path / "report" / "device_check.json").read_text())
    assert report["device"] == "cpu" and report["quick"] is False
    by_name = {p["name"]: p for p in report["parts"]}
    assert [p["name"] for p in report["parts"]] == ["fine", "broken", "absent", "slow"]
    assert by_name["fine"]["status"] == "passed" and by_name["fine"]["figures"] == {
        "widgets": 3,
        "device": False,
    }
    assert by_name["broken"]["status"] == "failed" and "the widget fell over" in by_name["broken"]["note"]
    assert "RuntimeError" in by_name["broken"]["log"]
    assert by_name["absent"]["status"] == "skipped" and by_name["absent"]["note"] == "no widget here"
    assert by_name["slow"]["status"] == "timeout" and by_name["slow"]["seconds"] < 20
    md = (tmp_path / "report" / "device_check.md").read_text()
    assert "| fine | passed |" in md and "| absent | skipped |" in md and "no widget here" in md
    assert "## Log of broken (failed)" in md and "## Log of slow (timeout)" in md
    assert "skipped absent: no widget here" in capsys.readouterr().out


def test_only_the_named_parts_run(dc, tmp_path):
    assert dc.main(["--out", str(tmp_path), "--parts", "fine", "absent"], parts=trivial_parts(dc)) == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert [p["name"] for p in report["parts"]] == ["fine", "absent"]


def test_out_of_budget_parts_are_skipped(dc, tmp_path):
    assert dc.main(["--out", str(tmp_path), "--parts", "fine", "--budget", "2"], parts=trivial_parts(dc)) == 0
    part = json.loads((tmp_path / "device_check.json").read_text())["parts"][0]
    assert part["status"] == "skipped" and "out of time" in part["note"]


@pytest.mark.parametrize("argv", [["--parts", "nope"], ["--device", "tpu"], ["--budget", "0"]])
def test_bad_arguments_exit_2(dc, tmp_path, argv):
    with pytest.raises(SystemExit) as exit_info:
        dc.main(["--out", str(tmp_path), *argv], parts=trivial_parts(dc))
    assert exit_info.value.code == 2


def test_the_default_parts_and_the_speed_table(dc):
    assert [p.name for p in dc.PARTS] == ["tests", "speed", "mobilenet", "book"]
    budget = dc.parser().get_default("budget")
    assert budget < 8 * 60 and all(p.limit <= budget for p in dc.PARTS)  # the whole check fits in 8 minutes
    text = (
        "torch 2.4.0, threads 16, device cuda\n"
        "loss                           B    D  dmlbook ms    PML ms  ratio\n"
        "contrastive                  512  128        1.25      2.50   0.50\n"
        "osm_caa / own contrastive   2048  128        3.00      2.00   1.50\n"
    )
    rows = dc.parse_speed_table(text)
    assert rows == [
        {"loss": "contrastive", "B": 512, "D": 128, "dmlbook_ms": 1.25, "other_ms": 2.5, "ratio": 0.5},
        {
            "loss": "osm_caa / own contrastive",
            "B": 2048,
            "D": 128,
            "dmlbook_ms": 3.0,
            "other_ms": 2.0,
            "ratio": 1.5,
        },
    ]


def test_the_gpu_parameter_set_changes_only_the_device(dc, tmp_path):
    yaml = pytest.importorskip("yaml")
    folder = dc.gpu_param_set(tmp_path / "nb")
    ci = yaml.safe_load((ROOT / "notebooks" / "params" / "ci.yaml").read_text())
    gpu = yaml.safe_load((folder / "params" / "gpu.yaml").read_text())
    assert gpu["common"]["device"] == "cuda"
    gpu["common"]["device"] = ci["common"]["device"]
    assert gpu == ci
    assert sorted(p.name for p in folder.glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
    )

"""dmlbook.experiments.report: mean ± std tables, the raw-input baseline and the measured comparison."""

from __future__ import annotations

import math

import pytest

from dmlbook.experiments import report


def _run(r1, mp=0.3, **kw):
    return {
        "recall@1": r1,
        "recall@2": min(1, r1 + 0.05),
        "recall@4": min(1, r1 + 0.1),
        "recall@8": min(1, r1 + 0.15),
        "map@r": mp,
        **kw,
    }


RUNS = {
    "a": [
        _run(0.50, epochs=10, seconds=60),
        _run(0.52, epochs=12, seconds=60),
        _run(0.54, epochs=14, seconds=60),
    ],
    "b": [_run(0.49), _run(0.50), _run(0.51)],
    "c": [_run(0.30), _run(0.31), _run(0.32)],
}


def test_mean_std_and_format():
    assert report.mean_std([1.0]) == (1.0, 0.0)
    mean, std = report.mean_std([0.5, 0.52, 0.54])
    assert mean == pytest.approx(0.52) and std == pytest.approx(0.02)
    assert report.fmt_mean_std([0.5, 0.52, 0.54]) == "52.0 ± 2.0"
    with pytest.raises(ValueError):
        report.mean_std([])


def test_summarize_means_stds():
    s = report.summarize(RUNS)
    assert set(s) == {"a", "b", "c"} and set(s["a"]) == set(report.COLUMNS)
    assert s["a"]["recall@1"]["n"] == 3
    means = report.means(RUNS)
    assert means["a"]["recall@1"] == pytest.approx(0.52)
    assert report.stds(RUNS)["c"]["recall@1"] == pytest.approx(0.01)
    with pytest.raises(KeyError, match="map@r"):
        report.summarize({"x": [{"recall@1": 0.1}]})
    with pytest.raises(ValueError):
        report.summarize({})


def test_results_table():
    table = report.results_table(RUNS, raw=_run(0.40, mp=0.2), title="T")
    lines = table.splitlines()
    assert lines[0] == "T" and lines[2].startswith(
        "| method | R@1 | R@2 | R@4 | R@8 | map@r | epochs | min/run |"
    )
    assert lines[4].startswith("| raw input (cosine k-NN) | 40.0 |")
    assert "| a | 52.0 ± 2.0 |" in table and "| 12 | 1.00 |" in table
    assert "| b | 50.0 ± 1.0 |" in table and table.rstrip().endswith("| – | – |")
    plain = report.results_table(RUNS, extra=False)
    assert "epochs" not in plain and len(plain.splitlines()) == 2 + len(RUNS)


def test_compare_within_noise_and_beyond():
    c = report.compare(RUNS, "recall@1", raw={"recall@1": 0.40})
    assert (c["best"], c["runner_up"], c["worst"]) == ("a", "b", "c")
    assert c["gap"] == pytest.approx(0.02) and c["noise"] == pytest.approx(0.02)
    assert c["significant"] is False and "not distinguishable" in c["text"]
    assert c["beats_raw"] == ["a", "b"] and "2 of 3 losses beat it" in c["text"]
    far = report.compare({"a": RUNS["a"], "c": RUNS["c"]})
    assert far["significant"] is True and "exceeds" in far["text"]


def test_compare_one_seed_says_unknown():
    c = report.compare({"a": [_run(0.6)], "b": [_run(0.5)]})
    assert c["significant"] is None and math.isnan(c["noise"]) and "one seed" in c["text"]
    single = report.compare({"a": [_run(0.6)]})
    assert single["runner_up"] is None and "Best recall@1: a at 60.0." == single["text"]


def test_raw_baseline_digits():
    raw = report.raw_baseline("digits")
    assert set(raw) == set(report.COLUMNS)
    recalls = [raw[f"recall@{k}"] for k in (1, 2, 4, 8)]
    assert recalls == sorted(recalls) and 0.8 < raw["recall@1"] <= 1.0

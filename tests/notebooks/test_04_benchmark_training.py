"""Chapter 4 (benchmark of the losses) at the ci parameters: digits, 2 losses, 1 seed, 2 short epochs."""

from __future__ import annotations

import math

METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r")
CI_LOSSES = {"contrastive", "osm_caa"}


def _check_table(table: dict, losses: set[str]) -> None:
    assert set(table) == losses
    for loss, row in table.items():
        assert set(METRICS) <= set(row), loss
        for m in METRICS:
            assert 0.0 <= row[m] <= 1.0, (loss, m, row[m])
        recalls = [row[f"recall@{k}"] for k in (1, 2, 4, 8)]
        assert recalls == sorted(recalls), (loss, recalls)
        assert row["map@r"] <= row["recall@1"] + 1e-9, loss  # MAP@R never exceeds Recall@1


def test_chapter_04_metrics(chapter):
    metrics = chapter("04")
    for key in ("results", "results_std", "raw", "results_by_dataset", "answer", "dataset", "best_loss"):
        assert key in metrics, key
    assert metrics["dataset"] == "digits"

    # the contract: results is loss -> metric -> mean
    _check_table(metrics["results"], CI_LOSSES)
    assert metrics["results_by_dataset"]["digits"] == metrics["results"]
    # 5 test classes: chance Recall@1 is about 0.2; even 20 training steps learn something
    assert all(row["recall@1"] > 0.4 for row in metrics["results"].values())

    # one seed: every std is 0
    assert set(metrics["results_std"]) == CI_LOSSES
    assert all(v == 0.0 for row in metrics["results_std"].values() for v in row.values())

    # the raw-pixel baseline row (cosine k-NN): digits pixels are a strong baseline
    raw = metrics["raw"]
    recalls = [raw[f"recall@{k}"] for k in (1, 2, 4, 8)]
    assert recalls == sorted(recalls) and 0.8 < raw["recall@1"] <= 1.0
    assert metrics["raw_recall_at_1"] == raw["recall@1"]

    # the measured answer agrees with the table
    answer = metrics["answer"]["digits"]["recall@1"]
    best = max(metrics["results"], key=lambda k: metrics["results"][k]["recall@1"])
    assert answer["best"] == metrics["best_loss"] == best
    assert math.isclose(metrics["best_recall_at_1"], metrics["results"][best]["recall@1"])
    assert answer["significant"] is None  # one seed: the text must not claim a significant lead
    assert "one seed" in answer["text"]
    assert metrics["runs"] == 2 and metrics["osm_lambda"] == {}

"""Chapter 1 (trivial samples) at the ci parameters: metrics present and in range, and the chapter's claim that
the share of trivial tuples rises while a network trains without mining."""

from __future__ import annotations

import math

METHODS = {"none", "batch_hard", "osm"}


def _in_unit(value: float) -> bool:
    return 0.0 <= value <= 1.0


def test_01_trivial_samples(chapter):
    metrics = chapter("01")

    # the contract: headline keys first, recall per method
    assert list(metrics)[:3] == ["trivial_fraction_start", "trivial_fraction_end", "recall_at_1"]
    assert set(metrics["recall_at_1"]) == METHODS
    assert set(metrics["recall_at_1_generated"]) == METHODS
    assert _in_unit(metrics["trivial_fraction_start"]) and _in_unit(metrics["trivial_fraction_end"])
    for recall in (*metrics["recall_at_1"].values(), *metrics["recall_at_1_generated"].values()):
        assert _in_unit(recall)
    assert metrics["real_dataset"] == "digits"  # ci needs no downloaded data

    # the claim: without mining, trivial triplets take over during training (digits: ~2/3 -> almost all)
    assert metrics["trivial_fraction_end"] > metrics["trivial_fraction_start"] + 0.1
    assert metrics["trivial_fraction_end"] > 0.8
    for dataset, per_method in metrics["trivial_triplets"].items():
        assert set(per_method) == METHODS, dataset
        assert per_method["none"]["end"] > per_method["none"]["start"], dataset
        # every run starts from the same initial weights and the same first batch
        assert len({round(m["start"], 12) for m in per_method.values()}) == 1, dataset
    for key in ("trivial_pairs", "nontrivial_gradient_share"):
        for per_method in metrics[key].values():
            for value in per_method.values():
                assert all(math.isnan(v) or _in_unit(v) for v in value.values())

    # the networks learn something: digits 5-9 has 5 test classes, chance Recall@1 is about 0.2
    assert min(metrics["recall_at_1"].values()) > 0.5
    assert min(metrics["recall_at_1_generated"].values()) > 1 / 4  # 4 generated test classes

"""Chapter 7 (centre-based structured metric learning, scene classification) at the ``ci`` parameters.

The ci run is digits with one repeat of 20 training steps per variant: enough for retrieval far above chance and
a classifier above chance, far too little to rank the variants, so only ranges and the internal consistency of
the printed claims are checked, not which variant wins.
"""

from __future__ import annotations

import math

VARIANTS = ["ce", "ce+lifted", "ce+centre", "ce+lifted+centre"]


def test_centre_based_remote_sensing_ci(chapter):
    metrics = chapter("07")
    assert list(metrics)[:2] == ["accuracy", "recall_at_1"]
    for key in ("accuracy", "recall_at_1"):
        assert list(metrics[key]) == VARIANTS, (key, metrics[key])
        assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in metrics[key].values()), (key, metrics[key])
        # one repeat: the mean is the single run
        assert all(metrics[f"{key}_runs"][v] == [metrics[key][v]] for v in VARIANTS)
    # digits, 10 classes: chance is 0.1 for both
    assert min(metrics["accuracy"].values()) > 0.15, metrics["accuracy"]
    assert min(metrics["recall_at_1"].values()) > 0.7, metrics["recall_at_1"]
    # the raw pixels of digits retrieve well (about 0.96): the baseline the trained heads are measured against
    assert 0.9 < metrics["raw_recall_at_1"] <= 1.0

    # the class-wise variants also classify by the nearest learned centre
    assert set(metrics["nearest_centre_accuracy"]) == {"ce+centre", "ce+lifted+centre"}
    assert all(0.1 < v <= 1.0 for v in metrics["nearest_centre_accuracy"].values())
    # geometry of normalised embeddings: spread in [0, 1], squared distance between class means in [0, 4]
    assert all(0.0 <= v <= 1.0 for v in metrics["intra_class_spread"].values())
    assert all(0.0 < v <= 4.0 for v in metrics["inter_class_distance"].values())
    assert set(metrics["first_batch_terms"]) == {"ce", "lifted", "intra", "inter"}
    assert all(v >= 0 for v in metrics["first_batch_terms"].values())

    claims = metrics["claims"]
    acc = metrics["accuracy"]
    assert claims["full_method_best_accuracy"] == all(acc["ce+lifted+centre"] > acc[v] for v in VARIANTS[:3])
    assert math.isclose(
        claims["ce+lifted_minus_ce_recall_at_1"],
        metrics["recall_at_1"]["ce+lifted"] - metrics["recall_at_1"]["ce"],
        abs_tol=1e-12,
    )
    tighter = max(metrics["intra_class_spread"][v] for v in VARIANTS if "centre" in v) < min(
        metrics["intra_class_spread"][v] for v in VARIANTS if "centre" not in v
    )
    assert claims["centres_tighten_classes"] == tighter
    assert claims["variants_beating_raw_recall"] == [
        v for v in VARIANTS if metrics["recall_at_1"][v] > metrics["raw_recall_at_1"]
    ]
    assert "digits" in metrics["setting"] and metrics["paper_accuracy"] == 0.973
    assert metrics["seeds"] == 1 and metrics["num_classes"] == 10 and metrics["params"]["fast"] is True
    assert metrics["train_samples"] + metrics["test_samples"] == 1797 and metrics["test_samples"] == 359

"""Chapter 2 (soft vs hard mining) at the ci parameters: metrics present and in range, the weights behave as each
method defines them, and the official OSM's metric term is scaled by 1/(B(B-1)/2)."""

from __future__ import annotations

import math

METHODS = {"none", "contrastive", "batch_hard", "semi_hard", "multi_similarity", "osm", "osm_official"}


def test_02_soft_vs_hard_mining(chapter):
    metrics = chapter("02")

    # the contract: recall and spread per method
    assert list(metrics)[:2] == ["recall_at_1", "intra_class_spread"]
    for key in (
        "recall_at_1",
        "intra_class_spread",
        "intra_class_spread_test",
        "intra_class_spread_absolute",
        "map_at_r",
    ):
        assert set(metrics[key]) == METHODS, key
    for name in METHODS:
        assert 0.5 < metrics["recall_at_1"][name] <= 1.0, name  # 5 digit classes: chance is about 0.2
        assert metrics["intra_class_spread"][name] > 0.0, name
        assert 0.0 <= metrics["intra_class_spread_absolute"][name] <= 1.0, name

    # the weights on one batch, as each method defines them
    profile = metrics["weight_profile"]
    assert profile["batch_hard"]["kept_positive"] < 0.2  # one positive per anchor out of K - 1 = 15
    assert profile["osm"]["kept_positive"] == 1.0 and profile["contrastive"]["kept_positive"] == 1.0
    hard, soft = profile["batch_hard"], profile["osm"]
    assert hard["weighted_d_positive"] > hard["mean_d_positive"]  # hard mining: the far positives
    assert hard["weighted_d_negative"] < hard["mean_d_negative"]  # and the near negatives
    assert soft["weighted_d_positive"] < soft["mean_d_positive"]  # OSM: the near positives count most
    for p in profile.values():
        assert all(0.0 <= p[k] <= 1.0 for k in ("kept_positive", "kept_negative"))

    # paper vs official OSM: the official metric term is divided by the number of pairs
    scale, factor = metrics["osm_official_gradient_scale"], metrics["osm_official_pair_factor"]
    assert math.isclose(factor, 2 / (64 * 63))  # digits batches: 4 classes x 16
    assert 0.5 * factor < scale < 2.0 * factor

    # OSM's "extended manifolds" claim, measured: at the ci size (and at the defaults) OSM keeps LESS relative
    # intra-class spread than batch-hard on the training classes and retrieves worse. Seeds 0, 1, 2 at ci: spread
    # ratio 0.65, 0.79, 0.82; Recall@1 osm - batch_hard -0.054, -0.020, -0.067 (defaults: ratio 0.12).
    claim = metrics["osm_claim"]
    assert claim["osm_keeps_more_spread"] is False
    assert 0.0 < claim["osm_to_batch_hard_spread"] < 1.0
    assert claim["osm_retrieves_better"] is False
    assert metrics["recall_at_1"]["osm"] < metrics["recall_at_1"]["batch_hard"]

"""Chapter 3 (class-aware attention under injected outliers and flipped labels) at the ``ci`` parameters.

The ci size (digits, one short training per noise rate and method) is enough for attention to rank corrupted
samples above chance, but far too small to decide whether CAA retrieves better under noise, so only the ranges
of the Recall@1 numbers under noise are checked, not their order; on clean data CAA's order is checked.
"""

from __future__ import annotations

import math

RATES = ("0.0", "0.1", "0.2", "0.4")


def test_outlier_attention_ci(chapter):
    metrics = chapter("03")
    assert list(metrics)[:3] == ["outlier_auc", "recall_at_1_with_caa", "recall_at_1_without_caa"]

    # AUC per noise rate; undefined (and absent) at 0 % noise, where nothing is corrupted
    assert set(metrics["outlier_auc"]) == set(RATES[1:])
    for rate, auc in metrics["outlier_auc"].items():
        assert 0.0 <= auc <= 1.0
        assert auc > 0.5, f"attention ranks corrupted samples no better than chance at noise {rate}: {auc}"
    for key in ("outlier_auc_outliers_only", "outlier_auc_flipped_only"):
        assert set(metrics[key]) == set(RATES[1:])
        assert all(v > 0.5 for v in metrics[key].values()), (key, metrics[key])

    for key in ("recall_at_1_with_caa", "recall_at_1_without_caa"):
        assert set(metrics[key]) == set(RATES)
        assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in metrics[key].values()), (key, metrics[key])
        # digits, 4 test classes: chance is about 0.25; even a few batches of training do far better
        assert min(metrics[key].values()) > 0.4, (key, metrics[key])

    # the lowest-attention samples are enriched in corrupted ones (precision above the corrupted share)
    for rate, precision in metrics["precision_at_lowest"].items():
        assert precision > float(rate), (rate, precision)
    # corrupted samples get less attention than clean ones on average
    for rate, means in metrics["mean_attention"].items():
        assert means["outlier"] < means["clean"] and means["flipped"] < means["clean"], (rate, means)

    claims = metrics["claims"]
    # Whether CAA retrieves better at the highest noise is not stable at the ci size: at seeds 0, 1, 2 the gap
    # CAA - OSM at 40 % noise is -0.038, +0.017, +0.007 (one short training each). So only its consistency with
    # the numbers is checked. On clean data CAA's cross-entropy helps at every one of those seeds (+0.039,
    # +0.078, +0.054), and that direction is asserted.
    assert isinstance(claims["caa_higher_at_top_noise"], bool) and claims["repeats"] == 1
    assert claims["recall_gap_clean"] > 0.0
    assert claims["attention_finds_corruption"] == (metrics["outlier_auc"]["0.4"] >= 0.85)
    assert claims["caa_higher_at_top_noise"] == (
        metrics["recall_at_1_with_caa"]["0.4"] > metrics["recall_at_1_without_caa"]["0.4"]
    )
    assert metrics["dataset"] == "digits" and metrics["params"]["fast"] is True

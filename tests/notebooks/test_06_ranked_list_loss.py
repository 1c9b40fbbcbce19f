"""Chapter 6 (Ranked List Loss) at the ``ci`` parameters: digits, four methods and two more T_n, 1 seed.

The toy experiment is deterministic and long enough to show the two boundaries; the digits runs are 20 steps,
so only ranges, the contract keys and the consistency of the printed claims are checked.
"""

from __future__ import annotations

import math

METHODS = ["contrastive", "osm", "ranked_list", "ranked_list_official"]


def test_chapter_06_metrics(chapter):
    metrics = chapter("06")
    assert list(metrics)[:2] == ["recall_at_1", "intra_class_spread"]
    for key in ("recall_at_1", "intra_class_spread"):
        assert list(metrics[key]) == METHODS, key
    assert all(0.2 < v <= 1.0 for v in metrics["recall_at_1"].values())  # 5 test classes: chance 0.2
    assert all(0.0 <= v <= 4.0 and not math.isnan(v) for v in metrics["intra_class_spread"].values())
    assert all(v == 0.0 for v in metrics["recall_at_1_std"].values())  # one seed

    # the toy: RLL stops pulling once positives are inside the ball of diameter alpha - m, contrastive collapses them
    toy, b = metrics["toy"], metrics["boundaries"]
    assert math.isclose(b["inner"], b["alpha"] - b["margin"])
    assert toy["ranked_list"]["max_positive_distance"] <= b["inner"] + 1e-6
    assert toy["ranked_list"]["min_negative_distance"] >= b["alpha"] - 1e-6
    assert toy["ranked_list"]["spread"] > 100 * toy["contrastive"]["spread"]

    # T_n: a larger temperature puts more of the negative weight on the nearest negative
    tn = metrics["tn_effect"]
    shares = [tn[k]["nearest_negative_share"] for k in ("0", "10", "30")]
    assert shares == sorted(shares) and shares[0] < shares[-1]
    effective = [tn[k]["effective_negatives"] for k in ("0", "10", "30")]
    assert effective == sorted(effective, reverse=True)
    assert math.isclose(tn["10"]["recall_at_1"], metrics["recall_at_1"]["ranked_list"])

    lists = metrics["ranked_lists"]
    assert 0.0 <= lists["trivial_fraction"] <= 1.0
    assert (
        lists["official_query_weight_min_over_uniform"]
        <= 1.0
        <= lists["official_query_weight_max_over_uniform"]
    )

    # the printed claims follow from the numbers
    r1, spread = metrics["recall_at_1"], metrics["intra_class_spread"]
    for other, claim in metrics["claims"].items():
        assert math.isclose(claim["recall_difference"], r1["ranked_list"] - r1[other], abs_tol=1e-12)
        assert math.isclose(claim["spread_difference"], spread["ranked_list"] - spread[other], abs_tol=1e-12)
        assert claim["rll_higher_recall"] == (claim["recall_difference"] > 0)
        assert claim["rll_more_spread"] == (claim["spread_difference"] > 0)
        assert claim["recall_beyond_noise"] is None  # one seed
    assert "one seed" in metrics["answer"]
    assert metrics["params"]["fast"] is True and metrics["seeds"] == [0]

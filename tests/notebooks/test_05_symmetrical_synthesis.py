"""Chapter 5 (symmetrical synthesis) at the ``ci`` parameters: digits, four losses with and without Symm, 1 seed.

Twenty training steps cannot rank plain against Symm, so the test checks the contract (``recall_at_1`` is
loss -> {"plain", "symm"}), the ranges, the 2-D geometry (which is exact), and that every printed claim follows
from the numbers next to it — not which variant wins.
"""

from __future__ import annotations

import math

LOSSES = ["triplet", "npairs", "angular", "lifted"]


def test_chapter_05_metrics(chapter):
    metrics = chapter("05")
    r1 = metrics["recall_at_1"]
    assert list(r1) == LOSSES
    for loss in LOSSES:
        assert set(r1[loss]) == {"plain", "symm"}, loss
        assert all(0.2 < v <= 1.0 for v in r1[loss].values()), (loss, r1[loss])  # 5 test classes: chance 0.2
    assert metrics["recall_at_1_by_dataset"] == {"digits": r1}
    for loss in LOSSES:
        for variant in ("plain", "symm"):
            runs = metrics["recall_at_1_per_seed"]["digits"][loss][variant]
            assert runs == [r1[loss][variant]]  # one seed: the mean is the run

    # the claims follow from the numbers
    gains = metrics["symm_gain"]["digits"]
    for loss in LOSSES:
        g = gains[loss]
        assert math.isclose(g["gain"], r1[loss]["symm"] - r1[loss]["plain"], abs_tol=1e-12)
        assert g["improves"] == (g["gain"] > 0)
        assert g["beyond_noise"] is None  # one seed: no noise estimate, no verdict
    assert metrics["symm_improves_every_loss"] == all(gains[loss]["improves"] for loss in LOSSES)
    assert metrics["symm_improves_every_loss_beyond_noise"] is None
    assert "one seed" in metrics["answer"]

    # 2-D geometry: for class B the mirror image b1' is closer to the anchor than either original point
    choice = metrics["geometry"]["choice"]
    assert choice["B"]["chosen"] == "b1'" and choice["B"]["similarity"] > choice["B"]["similarity_without"]
    assert choice["C"]["chosen"] == choice["C"]["without_synthesis"]  # an original point stays the hardest

    # mining with synthesis never picks an easier negative than without it
    mining = metrics["mining"]
    assert mining["never_easier"] is True and mining["min_gain"] >= 0.0
    assert 0.0 <= mining["synthetic_fraction_first_third"] <= 1.0
    assert 0.0 <= mining["synthetic_fraction_last_third"] <= 1.0
    assert 0.2 < metrics["npairs_official"]["digits"] <= 1.0
    assert metrics["params"]["fast"] is True and metrics["seeds"] == {"digits": [0]}

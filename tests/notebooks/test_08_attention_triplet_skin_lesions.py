"""Chapter 8 (DeMAL-CNN: mixed attention + triplet + classification, ISIC -> PH2) at the ``ci`` parameters.

The ci size (64 generated ISIC-like images, 2 folds x 2 epochs per variant) is far too small for any variant to
classify well or for attention to learn where the lesion is, so only ranges, the bookkeeping and the references
are checked: the uniform reference must equal the mean lesion area of the PH2-like set, the centred reference
must beat it (the generated lesions lie near the centre), and the claims must agree with the numbers.
"""

from __future__ import annotations

import math

VARIANTS = {"baseline", "attention", "triplet", "demal"}


def test_attention_triplet_skin_lesions_ci(chapter):
    metrics = chapter("08")
    assert list(metrics)[:2] == ["auc", "attention_in_lesion"]

    assert set(metrics["auc"]) == VARIANTS
    for key in ("auc", "accuracy", "sensitivity", "specificity", "ph2_melanoma_auc"):
        assert set(metrics[key]) == VARIANTS, key
        assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in metrics[key].values()), (key, metrics[key])
    for v in VARIANTS:
        folds = metrics["auc_folds"][v]
        assert len(folds) == 2 and math.isclose(sum(folds) / 2, metrics["auc"][v])

    # attention maps: only the variants with attention have them, plus the two reference maps
    att = metrics["attention_in_lesion"]
    assert set(att) == {"attention", "demal", "uniform", "centre"}
    assert all(0.0 < v < 1.0 for v in att.values()), att
    assert att["centre"] > att["uniform"]  # generated lesions sit near the image centre
    assert 0.08 < att["uniform"] < 0.4  # the mean lesion area of the generated PH2-like images
    assert set(metrics["pointing_game"]) == {"attention", "demal", "centre"}
    assert metrics["pointing_game"]["centre"] > 0.8

    claims = metrics["claims"]
    for v in ("attention", "demal"):
        assert claims[f"{v}_attention_beats_uniform"] == (att[v] > att["uniform"])
        assert claims[f"{v}_attention_beats_centre"] == (att[v] > att["centre"])
    for v in ("attention", "triplet", "demal"):
        assert math.isclose(
            claims[f"{v}_auc_gap"], metrics["auc"][v] - metrics["auc"]["baseline"], abs_tol=1e-9
        )
    assert claims["best_auc_variant"] == max(metrics["auc"], key=metrics["auc"].get)
    assert metrics["source"] == "generated" and metrics["isic_images"] == 64 and metrics["ph2_images"] == 32
    assert metrics["params"]["fast"] is True

"""dmlbook.experiments.mining_weights: every method's pair weights on one scale, and whom they favour."""

from __future__ import annotations

import pytest
import torch
from support import clustered_batch

from dmlbook.experiments import mining_weights
from dmlbook.losses import ContrastiveLoss, MultiSimilarityLoss, OSMCAALoss, TripletMarginLoss, build_loss


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def test_normalized_weights_sum_to_one_or_stay_zero():
    emb, labels = clustered_batch()
    for loss in (
        TripletMarginLoss(),
        TripletMarginLoss(mining="batch_hard"),
        OSMCAALoss(attention="none"),
        MultiSimilarityLoss(mining_epsilon=0.1),
    ):
        pos, neg = mining_weights.normalized_weights(loss.details(emb, labels).weights)
        assert pos.sum() == pytest.approx(1.0) and neg.sum() == pytest.approx(1.0)
        assert pos.dtype == neg.dtype == torch.float64 and bool((pos >= 0).all() and (neg >= 0).all())
    tight = torch.eye(4)[labels] * 3  # every triplet trivial: no weight at all
    pos, neg = mining_weights.normalized_weights(TripletMarginLoss().details(tight, labels).weights)
    assert float(pos.sum()) == 0.0 and float(neg.sum()) == 0.0


def test_pair_distances_of_a_similarity_loss():
    emb, labels = clustered_batch()
    ms = MultiSimilarityLoss().details(emb, labels)
    contrastive = ContrastiveLoss().details(emb, labels)
    assert torch.allclose(mining_weights.pair_distances(ms), contrastive.matrix, atol=1e-3)
    assert mining_weights.pair_distances(contrastive) is contrastive.matrix


def test_weight_profile_hard_versus_soft():
    emb, labels = clustered_batch(p=4, k=6, spread=0.8)
    hard = mining_weights.weight_profile(TripletMarginLoss(mining="batch_hard").details(emb, labels), labels)
    soft = mining_weights.weight_profile(build_loss("osm").details(emb, labels), labels)
    # batch-hard: one positive and one negative per anchor, the far positives and the near negatives
    assert hard["kept_positive"] <= 1 / 5 + 1e-9 and hard["kept_negative"] < 0.2
    assert hard["weighted_d_positive"] > hard["mean_d_positive"]
    assert hard["weighted_d_negative"] < hard["mean_d_negative"]
    # OSM: every positive counts, the near ones most
    assert soft["kept_positive"] == 1.0
    assert soft["weighted_d_positive"] < soft["mean_d_positive"]
    assert soft["weighted_d_negative"] < soft["mean_d_negative"]
    assert hard["mean_d_positive"] == pytest.approx(soft["mean_d_positive"])

"""dmlbook.diagnostics: known values of the class-spread, trivial-tuple, gradient-share and neighbour measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support import clustered_batch

from dmlbook import diagnostics
from dmlbook.losses import ContrastiveLoss, OSMCAALoss, TripletMarginLoss


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


# ---------------------------------------------------------------------------------------------- class spread
def test_intra_class_spread_known_values():
    # one class of two orthogonal unit vectors: mean (0.5, 0.5), spread 1 - |mean|^2 = 0.5
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])  # class 1 is one direction: spread 0
    assert diagnostics.intra_class_spread(emb, labels) == pytest.approx(0.25)  # mean of 0.5 and 0
    # without normalisation both classes have spread 0.5 (each sample sqrt(0.5) from its class mean)
    assert diagnostics.intra_class_spread(emb, labels, normalize=False) == pytest.approx(0.5)


def test_intra_class_spread_collapsed_and_numpy_input():
    emb = np.repeat(np.eye(3), 4, axis=0) * 5.0
    labels = np.repeat(np.arange(3), 4)
    assert diagnostics.intra_class_spread(emb, labels) == pytest.approx(0.0, abs=1e-12)
    # orthonormal means: |e_i - e_j|^2 = 2
    assert diagnostics.inter_class_distance(emb, labels) == pytest.approx(2.0)


def test_intra_class_spread_ignores_singletons_and_rejects_all_singletons():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert diagnostics.intra_class_spread(emb, torch.tensor([0, 0, 1])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two or more"):
        diagnostics.intra_class_spread(emb, torch.tensor([0, 1, 2]))


def test_centroid_distances_and_inter_class_distance():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-1.0, 0.0]])
    d = diagnostics.centroid_distances(emb, torch.tensor([0, 0, 1, 1]))
    assert d.shape == (4,)
    assert torch.allclose(d, torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0], dtype=d.dtype))
    assert diagnostics.inter_class_distance(emb, torch.tensor([0, 0, 1, 1])) == pytest.approx(1.5**2 + 0.5**2)
    with pytest.raises(ValueError, match="two classes"):
        diagnostics.inter_class_distance(emb, torch.zeros(4, dtype=torch.long))


def test_relative_spread_is_scale_free():
    emb, labels = clustered_batch(p=3, k=5, dim=4, spread=0.3)
    wide = diagnostics.relative_spread(emb, labels)
    assert wide == pytest.approx(
        diagnostics.intra_class_spread(emb, labels) / diagnostics.inter_class_distance(emb, labels)
    )
    # squeeze everything into a small cap of the sphere: absolute spread shrinks, the relative one much less so
    cap = torch.cat([torch.full((len(emb), 1), 50.0), emb], dim=1)
    assert diagnostics.intra_class_spread(cap, labels) < 0.01 * diagnostics.intra_class_spread(emb, labels)
    assert 0.2 * wide < diagnostics.relative_spread(cap, labels) < 5 * wide
    # without normalisation it is exactly invariant to scale
    assert diagnostics.relative_spread(7 * emb, labels, normalize=False) == pytest.approx(
        diagnostics.relative_spread(emb, labels, normalize=False)
    )


# ------------------------------------------------------------------------------------ trivial tuples, gradient
def test_gradient_share():
    g = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    assert diagnostics.gradient_share(g, torch.tensor([[False, True], [False, False]])) == pytest.approx(0.25)
    assert math.isnan(diagnostics.gradient_share(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool)))
    with pytest.raises(ValueError, match="must match"):
        diagnostics.gradient_share(g, torch.ones(3, 3, dtype=torch.bool))


def test_trivial_fractions_extremes():
    labels = torch.arange(4).repeat_interleave(3)
    tight = torch.eye(4)[labels] * 3  # every class one point, classes orthogonal: distance sqrt(2)
    out = diagnostics.trivial_fractions(tight, labels, triplet_margin=0.1, pos_margin=0.5, neg_margin=1.0)
    assert out["pairs"] == 1.0 and out["triplets"] == 1.0
    assert not out["nontrivial_pairs"].any()
    collapsed = torch.ones(12, 4)  # everything at one point: every triplet has a positive hinge
    out = diagnostics.trivial_fractions(collapsed, labels, triplet_margin=0.1, pos_margin=0.5, neg_margin=1.0)
    assert out["triplets"] == 0.0
    positives, candidates = 4 * 3 * 2, 12 * 11
    assert out["pairs"] == pytest.approx(
        positives / candidates
    )  # positives at d=0 are trivial, negatives not


def test_trivial_fractions_match_the_probe_losses():
    emb, labels = clustered_batch()
    out = diagnostics.trivial_fractions(emb, labels, triplet_margin=0.2, pos_margin=0.4, neg_margin=1.1)
    pair = ContrastiveLoss(pos_margin=0.4, neg_margin=1.1).details(emb, labels).weights
    triplet = TripletMarginLoss(margin=0.2).details(emb, labels).weights
    assert out["pairs"] == pair.trivial_fraction and out["triplets"] == triplet.trivial_fraction
    assert 0.0 < out["pairs"] < 1.0 and 0.0 < out["triplets"] < 1.0


def test_nontrivial_gradient_share():
    emb, labels = clustered_batch(spread=0.6)
    # a contrastive loss with the probe's own margins spends its whole gradient on the non-trivial pairs
    same = ContrastiveLoss(pos_margin=0.5, neg_margin=1.0)
    share_same = diagnostics.nontrivial_gradient_share(same, emb, labels, pos_margin=0.5, neg_margin=1.0)
    assert share_same == pytest.approx(1.0)
    # OSM keeps pulling positives that are already closer than the probe's m+: part of its gradient goes there
    osm = OSMCAALoss(attention="none")
    share = diagnostics.nontrivial_gradient_share(osm, emb, labels, pos_margin=0.5, neg_margin=1.0)
    assert 0.0 < share < 1.0
    details = osm.details(emb, labels)
    assert diagnostics.nontrivial_gradient_share(osm, emb, labels, details=details) == pytest.approx(share)


# ---------------------------------------------------------------------------------------- neighbour agreement
def test_neighbour_agreement_matches_a_loop():
    gen = torch.Generator().manual_seed(3)
    emb, labels = torch.randn(30, 4, generator=gen, dtype=torch.float64), torch.arange(30) % 4
    k = 3
    unit = emb / emb.norm(dim=1, keepdim=True)
    shares = []
    for i in range(30):
        d = [(float((unit[i] - unit[j]).norm()), j) for j in range(30) if j != i]
        nearest = [j for _, j in sorted(d)[:k]]
        shares.append(sum(int(labels[j] == labels[i]) for j in nearest) / k)
    assert diagnostics.neighbour_agreement(emb, labels, k=k) == pytest.approx(sum(shares) / 30)


def test_neighbour_agreement_of_separated_classes_is_one_and_k_is_checked():
    labels = torch.arange(20) % 2
    emb = (
        torch.stack([torch.ones(20), torch.zeros(20)], 1) * (labels == 0)[:, None]
        + torch.stack([torch.zeros(20), torch.ones(20)], 1) * (labels == 1)[:, None]
        + 0.01 * torch.randn(20, 2)
    )
    assert diagnostics.neighbour_agreement(emb, labels, k=5) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        diagnostics.neighbour_agreement(emb, labels, k=20)

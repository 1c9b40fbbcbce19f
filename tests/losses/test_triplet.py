import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch, triplets
from dml_reference import triplet as reference

from dmlbook.losses import TripletMarginLoss

MININGS = ["all", "batch_hard", "semi_hard"]


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("margin", [0.05, 0.3])
def test_matches_loop_reference(mining, margin):
    x, y = batch(4, 3, 5, seed=1)
    loss = TripletMarginLoss(margin=margin, mining=mining)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, margin, mining), x, y)


@pytest.mark.parametrize("mining", MININGS)
def test_gradcheck(mining):
    x, y = batch(3, 3, 4, seed=2)
    loss = TripletMarginLoss(margin=0.5, mining=mining)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


@pytest.mark.parametrize("mining", MININGS)
def test_pml_parity(mining, dtype, device):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning import miners

    pml_loss = pml_losses.TripletMarginLoss(margin=0.05)
    miner = {
        "all": None,
        "batch_hard": miners.BatchHardMiner(),
        "semi_hard": miners.TripletMarginMiner(margin=0.05, type_of_triplets="semihard"),
    }[mining]

    def pml(x, y):
        return pml_loss(x, y) if miner is None else pml_loss(x, y, miner(x, y))

    assert_pml_parity(TripletMarginLoss(mining=mining), pml, dtype=dtype, device=device, n=128, classes=32)


@pytest.mark.parametrize("mining", ["all", "semi_hard"])
def test_counts_active_triplets_like_brute_force(mining):
    x, y = batch(5, 4, 6, seed=3)
    margin = 0.2
    info = TripletMarginLoss(margin=margin, mining=mining).details(x, y)
    d = info.matrix
    active = 0
    per_pos = torch.zeros_like(d)
    for a, p, n in triplets(y):
        ok = d[a, p] - d[a, n] + margin > 0
        if mining == "semi_hard":
            ok = ok and d[a, n] > d[a, p]
        if ok:
            active += 1
            per_pos[a, p] += 1
    assert info.weights.num_candidates == len(triplets(y))
    assert info.weights.num_trivial == len(triplets(y)) - active
    assert torch.equal(info.weights.positive, per_pos)


def test_batch_hard_weights_mark_one_positive_and_negative_per_anchor():
    x, y = batch(4, 4, 8, seed=4)
    info = TripletMarginLoss(margin=1.0, mining="batch_hard").details(x, y)  # large margin: every anchor active
    assert torch.equal(info.weights.positive.sum(1), torch.ones(len(y), dtype=x.dtype))
    assert torch.equal(info.weights.negative.sum(1), torch.ones(len(y), dtype=x.dtype))
    far = torch.where(info.weights.positive > 0, info.matrix, torch.zeros_like(info.matrix)).sum(1)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    assert torch.allclose(far, torch.where(same, info.matrix, torch.full_like(info.matrix, -1)).max(1).values)

import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch, triplets
from dml_reference import triplet as reference
from dml_reference import triplet_mean as mean_reference

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
    info = TripletMarginLoss(margin=1.0, mining="batch_hard").details(
        x, y
    )  # large margin: every anchor active
    assert torch.equal(info.weights.positive.sum(1), torch.ones(len(y), dtype=x.dtype))
    assert torch.equal(info.weights.negative.sum(1), torch.ones(len(y), dtype=x.dtype))
    far = torch.where(info.weights.positive > 0, info.matrix, torch.zeros_like(info.matrix)).sum(1)
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    assert torch.allclose(far, torch.where(same, info.matrix, torch.full_like(info.matrix, -1)).max(1).values)


# ---- reduction="mean": every mined triplet counts, the zero-loss ones included (PML's MeanReducer) ------------


@pytest.mark.parametrize("mining", MININGS)
@pytest.mark.parametrize("margin", [0.05, 0.3])
def test_mean_reduction_matches_loop_reference(mining, margin):
    x, y = batch(4, 3, 5, seed=11)
    loss = TripletMarginLoss(margin=margin, mining=mining, reduction="mean")
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: mean_reference(x, y, margin, mining), x, y)


@pytest.mark.parametrize("mining", MININGS)
def test_mean_reduction_gradcheck(mining):
    x, y = batch(3, 3, 4, seed=12)
    loss = TripletMarginLoss(margin=0.5, mining=mining, reduction="mean")
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


@pytest.mark.parametrize("mining", MININGS)
def test_mean_reduction_pml_parity(mining, dtype, device):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning import miners, reducers

    pml_loss = pml_losses.TripletMarginLoss(margin=0.05, reducer=reducers.MeanReducer())
    miner = {
        "all": None,
        "batch_hard": miners.BatchHardMiner(),
        "semi_hard": miners.TripletMarginMiner(margin=0.05, type_of_triplets="semihard"),
    }[mining]

    def pml(x, y):
        return pml_loss(x, y) if miner is None else pml_loss(x, y, miner(x, y))

    ours = TripletMarginLoss(mining=mining, reduction="mean")
    assert_pml_parity(ours, pml, dtype=dtype, device=device, n=128, classes=32)


@pytest.mark.parametrize("mining", ["all", "batch_hard"])
def test_mean_counts_the_zero_loss_triplets_and_agrees_with_details(mining):
    # a margin small enough that some triplets are trivial: the mean over all of them is the non-zero mean scaled
    # by the share of active ones, and details() reports the same loss and counts as the forward call
    x, y = batch(5, 4, 6, seed=13)
    x = x + 2.0 * torch.nn.functional.one_hot(y, 6).to(x.dtype)  # each class pulled towards its own axis
    nonzero = TripletMarginLoss(margin=0.2, mining=mining)
    mean = TripletMarginLoss(margin=0.2, mining=mining, reduction="mean")
    info = mean.details(x, y)
    active = info.weights.num_candidates - info.weights.num_trivial
    assert 0 < active < info.weights.num_candidates  # both kinds present, so the two reductions differ
    assert torch.isclose(mean(x, y), nonzero(x, y) * active / info.weights.num_candidates, rtol=1e-12)
    assert torch.isclose(info.loss, mean(x, y), rtol=1e-12)
    same = nonzero.details(x, y).weights  # the tuples and their weights do not depend on the reduction
    assert torch.equal(info.weights.positive, same.positive) and torch.equal(
        info.weights.negative, same.negative
    )
    assert (info.weights.num_trivial, info.weights.num_candidates) == (same.num_trivial, same.num_candidates)


def test_reduction_is_checked_and_shown():
    with pytest.raises(ValueError, match="reduction must be one of 'nonzero', 'mean'; got 'sum'"):
        TripletMarginLoss(reduction="sum")
    assert "reduction='mean'" in repr(TripletMarginLoss(reduction="mean"))

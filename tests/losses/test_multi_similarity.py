import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import multi_similarity as reference

from dmlbook.losses import MultiSimilarityLoss


@pytest.mark.parametrize("epsilon", [None, 0.1, 0.5])
def test_matches_loop_reference(epsilon):
    x, y = batch(4, 3, 5, seed=5)
    loss = MultiSimilarityLoss(mining_epsilon=epsilon)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, epsilon=epsilon), x, y)


@pytest.mark.parametrize("epsilon", [None, 0.1])
def test_gradcheck(epsilon):
    x, y = batch(3, 3, 4, seed=6)
    loss = MultiSimilarityLoss(alpha=2.0, beta=10.0, mining_epsilon=epsilon)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


@pytest.mark.parametrize("epsilon", [None, 0.1])
def test_pml_parity(epsilon, dtype, device):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning import miners

    pml_loss = pml_losses.MultiSimilarityLoss()
    miner = None if epsilon is None else miners.MultiSimilarityMiner(epsilon=epsilon)

    def reference_pml(x, y):
        return pml_loss(x, y) if miner is None else pml_loss(x, y, miner(x, y))

    assert_pml_parity(MultiSimilarityLoss(mining_epsilon=epsilon), reference_pml, dtype=dtype, device=device)


def test_soft_weights_are_the_gradient_of_each_anchor_term():
    x, y = batch(4, 4, 6, seed=7)
    info = MultiSimilarityLoss().details(x, y)
    w = info.weights
    n = len(y)
    # ∂L/∂s_ij = (w⁺ or w⁻) / B for the non-symmetric per-anchor formulation; PML's mean over anchors
    assert torch.allclose(info.pair_gradient, (w.positive + w.negative) / n, atol=1e-12)
    assert torch.all(w.positive >= 0) and torch.all(w.negative >= 0)


def test_miner_counts_dropped_pairs_as_trivial():
    x, y = batch(6, 4, 3, seed=8)
    mined = MultiSimilarityLoss(mining_epsilon=0.0).details(x, y).weights
    kept = int((mined.positive > 0).sum() + (mined.negative > 0).sum())
    assert mined.num_trivial == mined.num_candidates - kept > 0

import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import npairs as reference

from dmlbook.losses import NPairsLoss, build_loss
from dmlbook.losses.npairs import first_pairs, npairs_cross_entropy


@pytest.mark.parametrize("negatives", ["pairs", "all"])
def test_matches_loop_reference(negatives):
    x, y = batch(4, 3, 5, seed=21)
    loss = NPairsLoss(negatives=negatives)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, negatives), x, y)


@pytest.mark.parametrize("negatives", ["pairs", "all"])
def test_uneven_classes_and_singletons_match_loop_reference(negatives):
    g = torch.Generator().manual_seed(22)
    x = torch.randn(13, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([5, 2, 5, 9, 2, 2, 7, 5, 1, 9, 3, 3, 3])  # 1 and 7 are singletons
    loss = NPairsLoss(negatives=negatives)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, negatives), x, y)


@pytest.mark.parametrize("negatives", ["pairs", "all"])
def test_gradcheck(negatives):
    x, y = batch(3, 3, 4, seed=23)
    loss = NPairsLoss(negatives=negatives)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(NPairsLoss(), pml.NPairsLoss(), dtype=dtype, device=device)
    assert_pml_parity(NPairsLoss(), pml.NPairsLoss(), dtype=dtype, device=device, n=32, classes=6, seeds=(3,))


def test_first_pairs_are_the_first_two_samples_of_each_class():
    y = torch.tensor([4, 1, 4, 0, 1, 4, 2])
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    anchor, positive = first_pairs(same)
    assert anchor.tolist() == [0, 1] and positive.tolist() == [2, 4]


def test_cross_entropy_of_logits():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    expected = sum(torch.logsumexp(logits[c], 0) - logits[c, c] for c in range(3)) / 3
    assert torch.allclose(npairs_cross_entropy(logits), expected, atol=1e-15)


def test_soft_weights_are_the_gradient_of_each_anchor_term():
    x, y = batch(4, 2, 6, seed=24)
    info = NPairsLoss().details(x, y)
    k = 4
    # L = mean over K anchors of CE: |∂L/∂s| = softmax weight / K on negatives, (1 − p_pos) / K on the positive
    assert torch.allclose(info.pair_gradient, (info.weights.positive + info.weights.negative) / k, atol=1e-12)
    assert info.weights.num_candidates == k
    rows, cols = (info.weights.positive > 0).nonzero(as_tuple=True)
    assert rows.tolist() == [0, 2, 4, 6] and cols.tolist() == [1, 3, 5, 7]  # one pair per class
    rows, cols = (info.weights.negative > 0).nonzero(as_tuple=True)
    assert set(cols.tolist()) == {1, 3, 5, 7}  # the negatives are the other pairs' positives


def test_satisfied_anchors_are_counted():
    # two well separated classes: each anchor's positive outranks every negative
    x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    assert NPairsLoss().details(x, y).weights.num_trivial == 2
    crossed = x[[0, 2, 1, 3]]  # each pair now spans both clusters: the other pair's positive is closer
    assert NPairsLoss().details(crossed, torch.tensor([0, 1, 1, 0])).weights.num_trivial == 0


def test_compute_override_of_negatives():
    x, y = batch(3, 3, 4, seed=25)
    assert torch.allclose(NPairsLoss()(x, y, negatives="all"), NPairsLoss(negatives="all")(x, y))
    with pytest.raises(ValueError, match="negatives must be one of 'pairs', 'all'"):
        NPairsLoss()(x, y, negatives="hardest")


def test_registered_and_bad_hyper_parameters():
    assert isinstance(build_loss("npairs"), NPairsLoss)
    with pytest.raises(ValueError, match="negatives must be one of 'pairs', 'all'"):
        build_loss("npairs", negatives="some")
    with pytest.raises(TypeError, match="bad hyper-parameter for loss 'npairs'"):
        build_loss("npairs", margin=0.1)


def test_single_samples_only_give_a_connected_zero():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out = NPairsLoss()(x, torch.arange(5))
    out.backward()
    assert out.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))

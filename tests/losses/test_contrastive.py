import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import contrastive as reference

from dmlbook.losses import ContrastiveLoss


@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.3, 1.2)])
def test_matches_loop_reference(margins):
    x, y = batch(4, 3, 6)
    pos_margin, neg_margin = margins
    loss = ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)
    assert_close_value_grad(
        lambda x, y: loss(x, y), lambda x, y: reference(x, y, pos_margin, neg_margin), x, y
    )


def test_gradcheck():
    x, y = batch(3, 3, 5)
    assert torch.autograd.gradcheck(lambda x: ContrastiveLoss()(x, y), (x.requires_grad_(),))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(ContrastiveLoss(), pml.ContrastiveLoss(), dtype=dtype, device=device)


def test_details_counts_trivial_pairs():
    x, y = batch(4, 4, 8)
    loss = ContrastiveLoss(neg_margin=1.0)
    info = loss.details(x, y)
    d = info.matrix
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    expected_trivial = int(((~same) & (d >= 1.0)).sum() + (same & ~eye & (d <= 0)).sum())
    assert info.weights.num_trivial == expected_trivial
    assert info.weights.num_candidates == len(y) * (len(y) - 1)
    assert torch.allclose(info.loss, loss(x, y))
    # the gradient lands on active pairs only
    assert torch.all(info.pair_gradient[info.weights.weights == 0] == 0)


@pytest.mark.parametrize("margins", [(0.0, 1.0), (0.3, 1.2), (0.0, 2.5), (0.6, 0.6)])
def test_symmetric_fast_path_matches_general_path(margins):
    # forward() uses the symmetric backward of the distance matrix; compute() on the general matrix is the reference
    x, y = batch(5, 3, 6, seed=3)
    loss = ContrastiveLoss(pos_margin=margins[0], neg_margin=margins[1])

    def general(x, y):
        return loss.compute(loss._pairs(x, y, loss._matrix(x)), details=False).loss

    assert_close_value_grad(lambda x, y: loss(x, y), general, x, y, rtol=1e-12)

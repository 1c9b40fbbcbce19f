import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import ranked_list as reference

from dmlbook.losses import RankedListLoss

SETTINGS = [dict(), dict(margin=0.6, Tn=5.0, Tp=2.0, imbalance=0.3), dict(margin=0.2, alpha=1.3, Tn=0.0)]


@pytest.mark.parametrize("kw", SETTINGS)
def test_matches_loop_reference(kw):
    x, y = batch(3, 4, 5, seed=11)
    loss = RankedListLoss(**kw)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, **kw), x, y)


def test_gradcheck():
    x, y = batch(3, 3, 4, seed=12)
    loss = RankedListLoss(margin=0.6, Tn=3.0, Tp=1.0)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))


@pytest.mark.filterwarnings("ignore:Values of Tp or Tn")
def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(RankedListLoss(), pml.RankedListLoss(margin=0.4, Tn=10), dtype=dtype, device=device)


def test_boundaries_select_non_trivial_pairs():
    x, y = batch(4, 4, 6, seed=13)
    loss = RankedListLoss(margin=0.4)  # α = 1.2, positive boundary 0.8
    info = loss.details(x, y)
    d = info.matrix
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    assert torch.equal(info.weights.positive > 0, same & (d > 0.8))
    assert torch.equal(info.weights.negative > 0, (y[:, None] != y[None, :]) & (d < 1.2))

import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import lifted as reference

from dmlbook.losses import LiftedStructureLoss


@pytest.mark.parametrize("margins", [(1.0, 0.0), (0.5, 0.2)])
def test_matches_loop_reference(margins):
    x, y = batch(3, 4, 5, seed=9)
    loss = LiftedStructureLoss(neg_margin=margins[0], pos_margin=margins[1])
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, *margins), x, y)


def test_gradcheck():
    x, y = batch(3, 3, 4, seed=10)
    assert torch.autograd.gradcheck(lambda x: LiftedStructureLoss()(x, y), (x.requires_grad_(),))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(LiftedStructureLoss(), pml.LiftedStructureLoss(), dtype=dtype, device=device)


def test_large_margin_does_not_overflow():
    x, y = batch(3, 3, 4, dtype=torch.float32)
    x.requires_grad_(True)
    out = LiftedStructureLoss(neg_margin=200.0)(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()

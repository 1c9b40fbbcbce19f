import pytest
import torch
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import supcon as reference

from dmlbook.losses import SupConLoss


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_matches_loop_reference(temperature):
    x, y = batch(4, 3, 6, seed=1)
    y[0] = 9  # a singleton anchor: no positive, no term
    loss = SupConLoss(temperature=temperature)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, temperature), x, y)


def test_gradcheck():
    x, y = batch(3, 3, 5, seed=2)
    assert torch.autograd.gradcheck(lambda x: SupConLoss(temperature=0.5)(x, y), (x.requires_grad_(),))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(SupConLoss(), pml.SupConLoss(), dtype=dtype, device=device)
    assert_pml_parity(
        SupConLoss(temperature=0.02), pml.SupConLoss(temperature=0.02), dtype=dtype, device=device
    )


def test_details_weights_per_pair():
    x, y = batch(3, 4, 6, seed=3)
    y[0] = 7
    info = SupConLoss(temperature=0.2).details(x, y)
    s = info.matrix
    eye = torch.eye(12, dtype=torch.bool)
    p = torch.softmax((s / 0.2).masked_fill(eye, float("-inf")), dim=1)  # each anchor's row, itself left out
    same = (y[:, None] == y[None, :]) & ~eye
    n_pos = same.sum(1, keepdim=True).clamp(min=1)
    assert torch.allclose(info.weights.negative, p * ~(same | eye), rtol=1e-12)
    assert torch.allclose(info.weights.positive, (1 / n_pos - p) * same, rtol=1e-12)
    assert info.weights.num_trivial == 1 and info.weights.num_candidates == 12  # the singleton anchor
    assert torch.all(info.pair_gradient[0] == 0)  # the singleton's row carries no gradient
    assert torch.allclose(info.loss, SupConLoss(temperature=0.2)(x, y), rtol=1e-12)


def test_no_positive_or_no_negative_gives_a_connected_zero():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    for y in (torch.arange(5), torch.zeros(5, dtype=torch.long)):
        out = SupConLoss()(x, y)
        out.backward()
        assert out.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
        x.grad = None


def test_tiny_temperature_is_finite():
    x, y = batch(3, 4, 6, seed=4)
    x = x.float().requires_grad_(True)
    out = SupConLoss(temperature=1e-3)(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_bad_input():
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            SupConLoss(temperature=bad)
    with pytest.raises(TypeError):
        SupConLoss(0.1)  # keyword-only
    x, y = batch(2, 2, 3)
    with pytest.raises(TypeError, match="labels"):
        SupConLoss()(x, y.float())
    with pytest.raises(ValueError, match="NaN"):
        SupConLoss()(x.clone().fill_(float("nan")), y)

import math

import pytest
import torch
from dml_reference import angular as reference
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from torch.profiler import ProfilerActivity, profile

from dmlbook.losses import AngularLoss, build_loss


@pytest.mark.parametrize("alpha", [40.0, 25.0, 55.0])
def test_matches_loop_reference(alpha):
    x, y = batch(4, 3, 5, seed=31)
    loss = AngularLoss(alpha=alpha)
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: reference(x, y, alpha), x, y)


def test_uneven_classes_match_loop_reference():
    g = torch.Generator().manual_seed(32)
    x = 3.0 * torch.randn(
        11, 4, generator=g, dtype=torch.float64
    )  # norms far from 1: the raw negatives matter
    y = torch.tensor([0, 3, 0, 3, 3, 1, 2, 2, 0, 4, 2])
    assert_close_value_grad(lambda x, y: AngularLoss()(x, y), reference, x, y)


def test_gradcheck():
    x, y = batch(3, 3, 4, seed=33)
    assert torch.autograd.gradcheck(lambda x: AngularLoss(alpha=35.0)(x, y), (x.requires_grad_(),))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    assert_pml_parity(AngularLoss(), pml.AngularLoss(), dtype=dtype, device=device)
    assert_pml_parity(
        AngularLoss(alpha=30), pml.AngularLoss(alpha=30), dtype=dtype, device=device, seeds=(4,)
    )


def test_negatives_enter_unnormalised_as_in_pml():
    x, y = batch(3, 2, 4, seed=34)
    scaled = x.clone()
    scaled[5] *= 4.0  # a negative of the first four samples
    assert not math.isclose(AngularLoss()(x, y).item(), AngularLoss()(scaled, y).item())
    scaled = x.clone()
    scaled[0] *= 4.0  # an anchor: normalised, so nothing changes for its own pairs; but it is also a negative
    positive_only = AngularLoss()(scaled[:2], y[:2])  # no negatives at all: zero either way
    assert positive_only.item() == 0.0


def test_satisfied_pairs_follow_the_angle_constraint():
    x, y = batch(4, 3, 3, seed=35)
    loss = AngularLoss(alpha=40.0)
    info = loss.details(x, y)
    u = torch.nn.functional.normalize(x, dim=1)
    tan = math.tan(math.radians(40.0))
    satisfied = 0
    pairs = [(a, p) for a in range(len(y)) for p in range(len(y)) if a != p and y[a] == y[p]]
    for a, p in pairs:
        centre = (u[a] + u[p]) / 2
        ok = all(
            (u[a] - u[p]).norm() <= 2 * tan * (u[n] - centre).norm() for n in range(len(y)) if y[n] != y[a]
        )
        satisfied += int(ok)
    assert info.weights.num_candidates == len(pairs)
    assert info.weights.num_trivial == satisfied
    assert torch.all(info.weights.negative[y[:, None] == y[None, :]] == 0)
    assert torch.all(
        (info.weights.positive > 0) == ((y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=bool))
    )


@pytest.mark.parametrize("alpha", [0.0, 90.0, 120.0, -5.0])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be"):
        build_loss("angular", alpha=alpha)


def test_no_cubic_allocation():
    b = 1024
    x = torch.randn(b, 64, requires_grad=True)
    y = torch.arange(b) // 4
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        AngularLoss()(x, y).backward()
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert 0 < largest < 64 * 2**20, f"an operation allocated {largest / 2**20:.0f} MiB"

import math

import pytest
import torch
from dml_reference import arcface as reference
from dml_reference import assert_close_value_grads, batch, pml_proxy_parity, proxy_fn

from dmlbook.losses import ArcFaceLoss


def _setup(seed=0):
    x, y = batch(3, 4, 6, seed=seed)
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return x, y, w


@pytest.mark.parametrize("kw", [{}, {"margin": 0.2, "scale": 10.0}, {"margin": 1.5, "scale": 4.0}])
def test_matches_loop_reference(kw):
    x, y, w = _setup()
    loss = ArcFaceLoss(num_classes=4, embedding_dim=6, **kw).double()
    assert_close_value_grads(proxy_fn(loss), lambda x, y, w: reference(x, y, w, **kw), x, y, w)


def test_both_branches_are_used_and_match():
    """margin 1.5: some own-class angles exceed π − m, where ψ = cos θ − m sin m."""
    x, y, w = _setup(seed=5)
    loss = ArcFaceLoss(num_classes=4, embedding_dim=6, margin=1.5, scale=4.0).double()
    with torch.no_grad():
        loss.proxies.copy_(w)
    own = loss.details(x, y).matrix.gather(1, y[:, None])
    assert (own < -math.cos(1.5)).any() and (own > -math.cos(1.5)).any()


def test_gradcheck_embeddings_and_proxies():
    x, y, w = _setup(seed=2)
    loss = proxy_fn(ArcFaceLoss(num_classes=4, embedding_dim=6, margin=0.3, scale=3.0).double())
    assert torch.autograd.gradcheck(lambda x, w: loss(x, y, w), (x.requires_grad_(), w.requires_grad_()))


def test_pml_parity_margin_in_degrees_there(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    errors = pml_proxy_parity(
        ArcFaceLoss(num_classes=24, embedding_dim=32, margin=math.radians(28.6)),
        pml.ArcFaceLoss(24, 32, margin=28.6),
        "W",
        transposed=True,
        dtype=dtype,
        device=device,
    )
    assert max(errors) <= (1e-5 if dtype == torch.float32 else 1e-9), errors


def test_margin_widens_the_own_angle():
    x, y, w = _setup(seed=3)
    plain = ArcFaceLoss(num_classes=4, embedding_dim=6, margin=0.0, scale=8.0).double()
    wide = ArcFaceLoss(num_classes=4, embedding_dim=6, margin=0.4, scale=8.0).double()
    with torch.no_grad():
        plain.proxies.copy_(w)
        wide.proxies.copy_(w)
    assert wide(x, y) > plain(x, y)
    assert wide.details(x, y).weights.num_trivial <= plain.details(x, y).weights.num_trivial


def test_margin_in_degrees_is_rejected():
    with pytest.raises(ValueError, match=r"radians.*math.radians\(28.6\)"):
        ArcFaceLoss(num_classes=3, embedding_dim=4, margin=28.6)
    with pytest.raises(ValueError, match="scale"):
        ArcFaceLoss(num_classes=3, embedding_dim=4, scale=0.0)

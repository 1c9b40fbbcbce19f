import pytest
import torch
from dml_reference import assert_close_value_grads, batch, pml_proxy_parity, proxy_fn
from dml_reference import proxy_nca as reference

from dmlbook.losses import ProxyNCALoss


def _setup(seed=0):
    x, y = batch(3, 4, 6, seed=seed)
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return x, y, w


@pytest.mark.parametrize("scale", [1.0, 7.5])
def test_matches_loop_reference(scale):
    x, y, w = _setup()
    loss = ProxyNCALoss(num_classes=4, embedding_dim=6, softmax_scale=scale).double()
    assert_close_value_grads(proxy_fn(loss), lambda x, y, w: reference(x, y, w, scale), x, y, w)


def test_gradcheck_embeddings_and_proxies():
    x, y, w = _setup(seed=2)
    loss = proxy_fn(ProxyNCALoss(num_classes=4, embedding_dim=6, softmax_scale=3.0).double())
    assert torch.autograd.gradcheck(lambda x, w: loss(x, y, w), (x.requires_grad_(), w.requires_grad_()))


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_pml_parity(dtype, device, scale):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    errors = pml_proxy_parity(
        ProxyNCALoss(num_classes=24, embedding_dim=32, softmax_scale=scale),
        pml.ProxyNCALoss(24, 32, softmax_scale=scale),
        "proxies",
        transposed=False,
        dtype=dtype,
        device=device,
    )
    assert max(errors) <= (1e-5 if dtype == torch.float32 else 1e-9), errors


def test_details_are_the_softmax_over_proxies():
    x, y, w = _setup(seed=3)
    loss = ProxyNCALoss(num_classes=4, embedding_dim=6).double()
    with torch.no_grad():
        loss.proxies.copy_(w)
    info = loss.details(x, y)
    p = torch.softmax(2.0 * info.matrix, dim=1)  # −d² = 2s − 2 on unit vectors
    own = torch.nn.functional.one_hot(y, 4).bool()
    assert torch.allclose(info.weights.negative, p * ~own, rtol=1e-12)
    assert torch.allclose(info.weights.positive[own], 1 - p[own], rtol=1e-12)
    assert torch.allclose(info.pair_gradient, 2.0 * (p - own.double()).abs() / len(y), rtol=1e-12)
    assert info.weights.num_trivial == int((p.argmax(1) == y).sum())


def test_bad_softmax_scale():
    with pytest.raises(ValueError, match="softmax_scale"):
        ProxyNCALoss(num_classes=3, embedding_dim=4, softmax_scale=-1.0)
    with pytest.raises(TypeError, match="softmax_scale"):
        ProxyNCALoss(num_classes=3, embedding_dim=4, softmax_scale="1")

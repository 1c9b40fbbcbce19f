import pytest
import torch
from dml_reference import assert_close_value_grads, batch, pml_proxy_parity, proxy_fn
from dml_reference import cosface as reference

from dmlbook.losses import CosFaceLoss


def _setup(seed=0):
    x, y = batch(3, 4, 6, seed=seed)
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return x, y, w


@pytest.mark.parametrize("kw", [{}, {"margin": 0.0, "scale": 5.0}, {"margin": 0.8, "scale": 16.0}])
def test_matches_loop_reference(kw):
    x, y, w = _setup()
    loss = CosFaceLoss(num_classes=4, embedding_dim=6, **kw).double()
    assert_close_value_grads(proxy_fn(loss), lambda x, y, w: reference(x, y, w, **kw), x, y, w)


def test_gradcheck_embeddings_and_proxies():
    x, y, w = _setup(seed=2)
    loss = proxy_fn(CosFaceLoss(num_classes=4, embedding_dim=6, scale=3.0).double())
    assert torch.autograd.gradcheck(lambda x, w: loss(x, y, w), (x.requires_grad_(), w.requires_grad_()))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    errors = pml_proxy_parity(
        CosFaceLoss(num_classes=24, embedding_dim=32),
        pml.CosFaceLoss(24, 32),
        "W",
        transposed=True,
        dtype=dtype,
        device=device,
    )
    assert max(errors) <= (1e-5 if dtype == torch.float32 else 1e-9), errors


def test_margin_zero_is_scaled_normalized_softmax():
    from dmlbook.losses import NormalizedSoftmaxLoss

    x, y, w = _setup(seed=3)
    cos = CosFaceLoss(num_classes=4, embedding_dim=6, margin=0.0, scale=8.0).double()
    soft = NormalizedSoftmaxLoss(num_classes=4, embedding_dim=6, temperature=1 / 8.0).double()
    with torch.no_grad():
        cos.proxies.copy_(w)
        soft.proxies.copy_(w)
    assert torch.allclose(cos(x, y), soft(x, y), rtol=1e-12)


def test_bad_margin_and_scale():
    with pytest.raises(ValueError, match="margin"):
        CosFaceLoss(num_classes=3, embedding_dim=4, margin=-0.1)
    with pytest.raises(ValueError, match="scale"):
        CosFaceLoss(num_classes=3, embedding_dim=4, scale=-64.0)

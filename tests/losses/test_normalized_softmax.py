import pytest
import torch
from dml_reference import assert_close_value_grads, batch, pml_proxy_parity, proxy_fn
from dml_reference import normalized_softmax as reference

from dmlbook.losses import NormalizedSoftmaxLoss


def _setup(seed=0):
    x, y = batch(3, 4, 6, seed=seed)
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return x, y, w


@pytest.mark.parametrize("temperature", [0.05, 0.7])
def test_matches_loop_reference(temperature):
    x, y, w = _setup()
    loss = NormalizedSoftmaxLoss(num_classes=4, embedding_dim=6, temperature=temperature).double()
    assert_close_value_grads(proxy_fn(loss), lambda x, y, w: reference(x, y, w, temperature), x, y, w)


def test_gradcheck_embeddings_and_proxies():
    x, y, w = _setup(seed=2)
    loss = proxy_fn(NormalizedSoftmaxLoss(num_classes=4, embedding_dim=6, temperature=0.3).double())
    assert torch.autograd.gradcheck(lambda x, w: loss(x, y, w), (x.requires_grad_(), w.requires_grad_()))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    errors = pml_proxy_parity(
        NormalizedSoftmaxLoss(num_classes=24, embedding_dim=32),
        pml.NormalizedSoftmaxLoss(24, 32),
        "W",
        transposed=True,
        dtype=dtype,
        device=device,
    )
    assert max(errors) <= (1e-5 if dtype == torch.float32 else 1e-9), errors


def test_is_cross_entropy_of_scaled_cosines():
    x, y, w = _setup(seed=3)
    loss = NormalizedSoftmaxLoss(num_classes=4, embedding_dim=6, temperature=0.2).double()
    with torch.no_grad():
        loss.proxies.copy_(w)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
    assert torch.allclose(loss(x, y), torch.nn.functional.cross_entropy(cos / 0.2, y), rtol=1e-12)
    info = loss.details(x, y)
    assert torch.allclose(info.matrix, cos, rtol=1e-12)
    assert torch.allclose(
        info.weights.positive.sum(1) - info.weights.negative.sum(1),
        torch.zeros(12, dtype=x.dtype),
        atol=1e-12,
    )  # the pull on the own class equals the total push (softmax sums to 1)


def test_bad_temperature():
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            NormalizedSoftmaxLoss(num_classes=3, embedding_dim=4, temperature=bad)

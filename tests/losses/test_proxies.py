"""What the six proxy losses share: registration, class vectors, dtypes, checks, details and a training step."""

import pytest
import torch
from dml_reference import batch

from dmlbook.losses import LOSSES, ProxyLoss, build_loss

PROXY_LOSSES = ["proxy_anchor", "proxy_nca", "normalized_softmax", "arcface", "cosface", "soft_triple"]


def _loss(name, num_classes=4, dim=6, **kw):
    return build_loss(name, num_classes=num_classes, embedding_dim=dim, **kw)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_registered_with_classes_and_own_learning_rate(name):
    cls = LOSSES[name]
    assert issubclass(cls, ProxyLoss) and cls.needs_classes and cls.lr_mult > 1
    loss = _loss(name)
    rows = 4 * (10 if name == "soft_triple" else 1)
    assert isinstance(loss.proxies, torch.nn.Parameter) and loss.proxies.shape == (rows, 6)
    assert [n for n, _ in loss.named_parameters()] == ["proxies"]
    with pytest.raises(TypeError):
        cls(4, 6)  # keyword-only
    with pytest.raises(TypeError, match="bad hyper-parameter"):
        build_loss(name, num_classes=4, embedding_dim=6, nonsense=1)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_bad_input(name):
    loss = _loss(name)
    x, y = batch(2, 3, 6)
    with pytest.raises(ValueError, match="embedding_dim"):
        loss(torch.randn(6, 5, dtype=torch.float64), y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        loss(x, torch.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match="labels must lie"):
        loss(x, torch.tensor([0, 1, 2, 3, -1, 0]))
    with pytest.raises(TypeError, match="labels"):
        loss(x, y.float())
    with pytest.raises(ValueError, match="labels has 5 entries"):
        loss(x, y[:5])
    with pytest.raises(TypeError, match="floating-point"):
        loss(x.long(), y)
    with pytest.raises(ValueError, match="2-D"):
        loss(x[0], y)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        loss(bad, y)
    with torch.no_grad():
        loss.proxies[0, 0] = float("inf")
    with pytest.raises(ValueError, match="proxies contain NaN"):
        loss(x, y)
    with pytest.raises(ValueError, match="num_classes"):
        _loss(name, num_classes=1)
    with pytest.raises(TypeError, match="embedding_dim"):
        _loss(name, dim=6.0)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_float64_batch_with_float32_proxies(name):
    loss = _loss(name)  # float32 parameter
    x, y = batch(2, 3, 6)  # float64
    out = loss(x.requires_grad_(True), y)
    out.backward()
    assert out.dtype == torch.float64 and loss.proxies.grad.dtype == torch.float32
    assert torch.isfinite(loss.proxies.grad).all() and loss.proxies.grad.abs().sum() > 0
    assert torch.allclose(out, loss.float()(x.float(), y).double(), rtol=1e-4)


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_details_shapes_and_value(name):
    loss = _loss(name)
    x, y = batch(2, 3, 6)
    info = loss.details(x.float(), y)
    p = loss.proxies.shape[0]
    for t in (info.matrix, info.pair_gradient, info.weights.positive, info.weights.negative):
        assert t.shape == (6, p) and not t.requires_grad
    assert info.matrix_kind == "proxy_similarity" and info.weights.unit == "anchor"
    assert torch.all(info.weights.positive >= 0) and torch.all(info.weights.negative >= 0)
    assert 0 <= info.weights.num_trivial <= info.weights.num_candidates == 6
    assert torch.allclose(info.loss, loss(x.float(), y).detach())
    assert torch.allclose(info.matrix, loss.cosine(x.float()).detach(), atol=1e-6)
    assert info.pair_gradient.sum() > 0


@pytest.mark.parametrize("name", PROXY_LOSSES)
def test_a_few_steps_separate_the_classes(name):
    torch.manual_seed(0)
    x, y = batch(4, 4, 6, dtype=torch.float32, seed=7)
    x = x.requires_grad_(True)
    loss = _loss(name)
    opt = torch.optim.SGD(
        [{"params": [x]}, {"params": loss.parameters(), "lr": 0.05 * loss.lr_mult / 10}], lr=0.05
    )
    first = loss(x, y).item()
    for _ in range(30):
        opt.zero_grad()
        loss(x, y).backward()
        opt.step()
    assert loss(x, y).item() < first

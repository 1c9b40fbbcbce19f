import pytest
import torch
from dml_reference import assert_close_value_grads, batch, pml_proxy_parity, proxy_fn
from dml_reference import proxy_anchor as reference

from dmlbook.losses import ProxyAnchorLoss


def _setup(n_classes=5, seed=0):
    x, y = batch(3, 4, 6, seed=seed)  # classes 0..2 in the batch, 3 and 4 absent
    w = torch.randn(n_classes, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return x, y, w


@pytest.mark.parametrize("kw", [{}, {"margin": 0.3, "alpha": 8.0}, {"margin": 0.0, "alpha": 100.0}])
def test_matches_loop_reference(kw):
    x, y, w = _setup()
    loss = ProxyAnchorLoss(num_classes=5, embedding_dim=6, **kw).double()
    assert_close_value_grads(proxy_fn(loss), lambda x, y, w: reference(x, y, w, **kw), x, y, w)


def test_gradcheck_embeddings_and_proxies():
    x, y, w = _setup(seed=3)
    loss = proxy_fn(ProxyAnchorLoss(num_classes=5, embedding_dim=6, alpha=4.0).double())
    assert torch.autograd.gradcheck(lambda x, w: loss(x, y, w), (x.requires_grad_(), w.requires_grad_()))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    errors = pml_proxy_parity(
        ProxyAnchorLoss(num_classes=24, embedding_dim=32),
        pml.ProxyAnchorLoss(24, 32),
        "proxies",
        transposed=False,
        dtype=dtype,
        device=device,
    )
    assert max(errors) <= (1e-5 if dtype == torch.float32 else 1e-9), errors


def test_details_weights_are_the_soft_hardness_of_each_proxy():
    x, y, w = _setup(seed=4)
    loss = ProxyAnchorLoss(num_classes=5, embedding_dim=6).double()
    with torch.no_grad():
        loss.proxies.copy_(w)
    info = loss.details(x, y)
    own = torch.nn.functional.one_hot(y, 5).bool()
    assert info.matrix.shape == (12, 5) and info.matrix_kind == "proxy_similarity"
    assert torch.all(info.weights.positive[~own] == 0) and torch.all(info.weights.negative[own] == 0)
    # h⁺ of a proxy: e^{−α(s−δ)} / (1 + Σ e^{−α(s−δ)}) over its class's samples
    e = torch.exp(-32.0 * (info.matrix - 0.1)) * own
    assert torch.allclose(info.weights.positive, e / (1 + e.sum(0, keepdim=True)), rtol=1e-12)
    # |∂L/∂s| = α/|P⁺| h⁺ on the own proxy (3 classes present), α/C h⁻ on the others
    expected = 32.0 / 3 * info.weights.positive + 32.0 / 5 * info.weights.negative
    assert torch.allclose(info.pair_gradient, expected, rtol=1e-12)
    assert torch.allclose(info.loss, loss(x, y), rtol=1e-12)
    satisfied = (info.matrix[own] - 0.1 > info.matrix.masked_fill(own, -9).amax(1) + 0.1).sum()
    assert info.weights.num_trivial == int(satisfied) and info.weights.num_candidates == 12


def test_absent_classes_only_push():
    x, y, _ = _setup(seed=5)
    loss = ProxyAnchorLoss(num_classes=5, embedding_dim=6).double()
    loss(x, y).backward()
    g = loss.proxies.grad
    assert g[3:].abs().sum() > 0  # the absent classes' proxies still move (negative term)
    w_hat = torch.nn.functional.normalize(loss.proxies.detach(), dim=1)
    x_hat = torch.nn.functional.normalize(x, dim=1)
    # descending the gradient moves an absent proxy away from the batch: its cosines with the samples drop
    with torch.no_grad():
        moved = torch.nn.functional.normalize(loss.proxies[3] - 1e-3 * g[3], dim=0)
    assert (x_hat @ moved).sum() < (x_hat @ w_hat[3]).sum()


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match="alpha"):
        ProxyAnchorLoss(num_classes=3, embedding_dim=4, alpha=0.0)
    with pytest.raises(ValueError, match="margin"):
        ProxyAnchorLoss(num_classes=3, embedding_dim=4, margin=-0.1)
    with pytest.raises(TypeError):
        ProxyAnchorLoss(3, 4)  # keyword-only

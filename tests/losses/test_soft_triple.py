import pytest
import torch
from dml_reference import assert_close_value_grads, batch, pml_proxy_parity, proxy_fn
from dml_reference import soft_triple as reference

from dmlbook.losses import SoftTripleLoss


def _setup(seed=0, classes=4, k=3):
    x, y = batch(3, 4, 6, seed=seed)
    w = torch.randn(classes * k, 6, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return x, y, w


@pytest.mark.parametrize(
    "kw",
    [
        {"centers_per_class": 3},
        {"centers_per_class": 3, "la": 5.0, "gamma": 0.5, "margin": 0.2},
        {"centers_per_class": 1},
    ],
)
def test_matches_loop_reference(kw):
    x, y, w = _setup(k=kw["centers_per_class"])
    loss = SoftTripleLoss(num_classes=4, embedding_dim=6, **kw).double()
    assert_close_value_grads(proxy_fn(loss), lambda x, y, w: reference(x, y, w, **kw), x, y, w)


def test_gradcheck_embeddings_and_centres():
    x, y, w = _setup(seed=2)
    loss = proxy_fn(
        SoftTripleLoss(num_classes=4, embedding_dim=6, centers_per_class=3, la=3.0, gamma=0.5).double()
    )
    assert torch.autograd.gradcheck(lambda x, w: loss(x, y, w), (x.requires_grad_(), w.requires_grad_()))


def test_pml_parity(dtype, device):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    errors = pml_proxy_parity(
        SoftTripleLoss(num_classes=24, embedding_dim=32),
        pml.SoftTripleLoss(24, 32),
        "fc",
        transposed=True,
        dtype=dtype,
        device=device,
    )
    assert max(errors) <= (1e-5 if dtype == torch.float32 else 1e-9), errors


def test_centre_rows_belong_to_their_class():
    """Row c·K + k is centre k of class c: moving a centre of class 1 onto a sample of class 1 lowers that
    sample's loss, one of class 2 raises it, and the details put the sample's pull on class 1's rows only."""
    x, y, w = _setup(seed=3)
    loss = SoftTripleLoss(num_classes=4, embedding_dim=6, centers_per_class=3).double()
    with torch.no_grad():
        loss.proxies.copy_(w)
    assert loss.proxies.shape == (12, 6)
    info = loss.details(x, y)
    assert info.matrix.shape == (12, 12) and info.weights.positive.shape == (12, 12)
    i = int((y == 1).nonzero()[0])
    assert torch.all(info.weights.positive[i, :3] == 0) and torch.all(info.weights.positive[i, 6:] == 0)
    assert torch.all(info.weights.positive[i, 3:6] > 0)
    assert torch.allclose(
        info.matrix, torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
    )
    xi, yi = x[[i, i]], y[[i, i]]  # the sample twice: a batch whose loss is that sample's
    before = loss(xi, yi)
    for row, lower in ((4, True), (7, False)):  # centre 1 of class 1; centre 1 of class 2
        with torch.no_grad():
            loss.proxies.copy_(w)
            loss.proxies[row] = x[i]
        assert (loss(xi, yi) < before) == lower


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match="centers_per_class"):
        SoftTripleLoss(num_classes=3, embedding_dim=4, centers_per_class=0)
    with pytest.raises(TypeError, match="centers_per_class"):
        SoftTripleLoss(num_classes=3, embedding_dim=4, centers_per_class=2.5)
    for name in ("la", "gamma"):
        with pytest.raises(ValueError, match=name):
            SoftTripleLoss(num_classes=3, embedding_dim=4, **{name: 0.0})

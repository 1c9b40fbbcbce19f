import pytest
import torch
import torch.nn.functional as F
from dml_reference import assert_close_value_grad, batch
from dml_reference import osm_caa as reference

from dmlbook.attention import class_aware_attention
from dmlbook.losses import OSMCAALoss


def _logits(y, n_classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(y), n_classes, generator=g, dtype=torch.float64) + 2.0 * F.one_hot(y, n_classes)


@pytest.mark.parametrize("attention", ["prob", "gaussian", "none"])
@pytest.mark.parametrize("detach", [True, False])
def test_matches_loop_reference(attention, detach):
    x, y = batch(3, 4, 5, seed=14)
    logits = _logits(y, 3)
    a = class_aware_attention(logits, y, attention)
    loss = OSMCAALoss(attention=attention, detach_weights=detach)
    assert_close_value_grad(
        lambda x, y: loss(x, y, logits=logits), lambda x, y: reference(x, y, a, detach=detach), x, y
    )


def test_official_variant_matches_code_form():
    x, y = batch(3, 4, 5, seed=15)
    logits = _logits(y, 3)
    a = class_aware_attention(logits, y, "gaussian")
    n = len(y)
    loss = OSMCAALoss.official()
    assert loss.attention == "gaussian" and loss.variant == "official"
    assert_close_value_grad(
        lambda x, y: loss(x, y, logits=logits),
        lambda x, y: reference(x, y, a, kernel_scale=2.0, pair_scale=1 / (n * (n - 1) / 2)),
        x,
        y,
    )


def test_gradcheck_with_weight_gradients():
    x, y = batch(3, 3, 4, seed=16)
    logits = _logits(y, 3).requires_grad_(True)
    loss = OSMCAALoss(detach_weights=False)
    assert torch.autograd.gradcheck(lambda x, z: loss(x, y, logits=z), (x.requires_grad_(), logits))


def test_own_classifier_adds_cross_entropy_and_trains():
    torch.manual_seed(0)
    x, y = batch(4, 4, 8, dtype=torch.float32, seed=17)
    loss = OSMCAALoss(num_classes=4, embedding_dim=8)
    clf = loss.classifier.classifier
    with torch.no_grad():
        logits = clf(F.normalize(x, dim=1))
    plain = OSMCAALoss()(x, y, logits=logits) + F.cross_entropy(logits, y)
    assert torch.allclose(loss(x, y), plain, atol=1e-6)
    opt = torch.optim.SGD(loss.parameters(), lr=5.0)
    first = loss(x, y).item()
    for _ in range(30):
        opt.zero_grad()
        loss(x, y).backward()
        opt.step()
    assert loss(x, y).item() < first


def test_invariants():
    x, y = batch(4, 4, 8, seed=18)
    logits = _logits(y, 4)
    w = OSMCAALoss().details(x, y, logits=logits).weights
    assert torch.all(w.positive >= 0) and torch.all(w.negative >= 0)
    # attention="none" gives uniform attention
    none = OSMCAALoss(attention="none").details(x, y).weights
    assert torch.equal(none.attention, torch.ones(len(y), dtype=x.dtype))
    # σ → ∞ gives uniform positive weights
    flat = OSMCAALoss(attention="none", sigma_osm=1e6).details(x, y).weights
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool)
    assert torch.allclose(flat.positive[same], torch.ones(int(same.sum()), dtype=x.dtype))
    # negatives beyond the margin get no weight
    d = OSMCAALoss().details(x, y, logits=logits).matrix
    assert torch.all(w.negative[(y[:, None] != y[None, :]) & (d >= 1.2)] == 0)


def test_outlier_with_low_class_probability_gets_low_attention():
    x, y = batch(3, 5, 6, seed=19)
    logits = 4.0 * F.one_hot(y, 3).double()
    logits[0] = torch.tensor([-4.0, 4.0, 0.0], dtype=torch.float64)  # sample 0 (class 0) looks like class 1
    for kind in ("prob", "gaussian"):
        a = OSMCAALoss(attention=kind).details(x, y, logits=logits).weights.attention
        assert a[0] < a[1:].min()
        assert a.argmin() == 0


def test_a_batch_without_positives_is_finite():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.arange(6)
    out = OSMCAALoss(attention="none")(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_needs_logits_or_classifier():
    x, y = batch(3, 3, 4)
    with pytest.raises(ValueError, match="logits"):
        OSMCAALoss()(x, y)
    with pytest.raises(ValueError, match="own classifier"):
        OSMCAALoss(num_classes=3, embedding_dim=4)(x, y, logits=torch.zeros(9, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"logits must have shape \(9, num_classes\)"):
        OSMCAALoss()(x, y, logits=torch.zeros(8, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_classes and embedding_dim"):
        OSMCAALoss(num_classes=3)


@pytest.mark.parametrize("attention", ["prob", "gaussian", "none"])
@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("detach", [True, False])
def test_fast_forward_matches_general_path_with_own_classifier(variant, detach, attention):
    # forward() shares one normalisation between distances and classifier and uses the symmetric backward;
    # compute() on the general pair matrix (its classifier normalising again) is the reference, parameters included
    torch.manual_seed(1)
    x, y = batch(4, 3, 6, seed=20)
    loss = OSMCAALoss(
        num_classes=4, embedding_dim=6, detach_weights=detach, variant=variant, attention=attention
    ).double()

    def value_grads(fn):
        xx = x.clone().requires_grad_(True)
        out = fn(xx)
        grads = torch.autograd.grad(out, [xx, *loss.parameters()])
        return out.detach(), grads

    v1, g1 = value_grads(lambda x: loss(x, y))
    v2, g2 = value_grads(lambda x: loss.compute(loss._pairs(x, y, loss._matrix(x)), details=False).loss)
    assert torch.allclose(v1, v2, rtol=1e-12)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


def test_constant_weight_gradient_matches_autograd():
    # the closed-form gradient of the detached-weight loss equals autograd through the same formula
    x, y = batch(3, 4, 5, seed=21)
    logits = _logits(y, 3)
    loss = OSMCAALoss(attention="prob")
    xx = x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(loss(xx, y, logits=logits), xx)
    a = class_aware_attention(logits, y, "prob")
    (g2,) = torch.autograd.grad(reference(xx, y, a, detach=True), xx)
    assert torch.allclose(g1, g2, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float16, 2e-2), (torch.bfloat16, 5e-2)], ids=["f16", "bf16"]
)
@pytest.mark.parametrize("detach_weights", [True, False])
def test_own_classifier_accepts_half_precision_embeddings(dtype, tol, detach_weights):
    # the classifier stays float32: it runs in its own dtype, the result is in the embeddings' dtype
    x, y = batch(4, 4, 8, dtype=torch.float32, seed=31)
    torch.manual_seed(0)
    loss = OSMCAALoss(num_classes=4, embedding_dim=8, detach_weights=detach_weights)
    reference_value = loss(x, y)
    half = x.to(dtype).requires_grad_(True)
    out = loss(half, y)
    assert out.dtype == dtype and torch.isfinite(out)
    assert abs(out.item() - reference_value.item()) <= tol * abs(reference_value.item())
    out.backward()
    assert half.grad.dtype == dtype and torch.isfinite(half.grad).all() and half.grad.abs().sum() > 0
    assert loss.classifier.classifier.weight.grad is not None  # the cross-entropy still trains the classifier
    info = loss.details(x.to(dtype), y)
    assert torch.isfinite(info.loss) and info.weights.attention.shape == (len(y),)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8], ids=str)
def test_own_classifier_accepts_any_integer_labels(dtype):
    x, y = batch(4, 4, 8, dtype=torch.float32, seed=32)
    torch.manual_seed(0)
    loss = OSMCAALoss(num_classes=4, embedding_dim=8)
    assert torch.equal(loss(x, y.to(dtype)), loss(x, y))
    assert torch.equal(loss.details(x, y.to(dtype)).loss, loss.details(x, y).loss)


def test_own_classifier_names_a_wrong_embedding_size():
    with pytest.raises(ValueError, match="embeddings must have 8 columns"):
        OSMCAALoss(num_classes=4, embedding_dim=8)(torch.randn(8, 5), torch.arange(8) % 4)

"""CentreStructuredLoss: CE + lifted structure + feature-to-centre + centre-to-centre, checked against loops."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from dml_reference import batch
from dml_reference import lifted as lifted_reference
from torch.func import functional_call

from dmlbook.losses import CentreStructuredLoss, LiftedStructureLoss, build_loss

TERMS = ("ce", "lifted", "intra", "inter")
WEIGHTS = {"ce": "ce_weight", "lifted": "lifted_weight", "intra": "intra_weight", "inter": "inter_weight"}


def _loss(num_classes=3, dim=5, seed=0, **kwargs):
    torch.manual_seed(seed)
    return CentreStructuredLoss(num_classes=num_classes, embedding_dim=dim, **kwargs).double()


def _unit(x):
    return [row / row.norm() for row in x]


def _ema_reference(u, y, centres, rate):
    """``c_k − α Σ_{i:y_i=k}(c_k − f̂_i)/(1 + n_k)``, one class at a time."""
    out = []
    for k in range(centres.shape[0]):
        members = [u[i] for i in range(len(u)) if y[i] == k]
        delta = sum((centres[k] - f for f in members), torch.zeros_like(centres[k])) / (1 + len(members))
        out.append(centres[k] - rate * delta)
    return torch.stack(out)


def reference(
    x, y, weight, bias, centres, *, w=(1.0, 1.0, 0.01, 0.01), tau=2.0, neg=1.0, pos=0.0, ema_rate=None
):
    """The four terms written one sample / one pair at a time from the formulas in the docstring."""
    u, lab, n, c = _unit(x), y.tolist(), len(x), centres.shape[0]
    ce = sum(-torch.log_softmax(weight @ u[i] + bias, dim=0)[lab[i]] for i in range(n)) / n
    lifted = lifted_reference(x, y, neg, pos)
    pulled = centres.detach() if ema_rate is not None else centres
    separated = _ema_reference(u, lab, centres.detach(), ema_rate) if ema_rate is not None else centres
    intra = sum(0.5 * ((u[i] - pulled[lab[i]]) ** 2).sum() for i in range(n)) / n
    pairs = list(itertools.combinations(range(c), 2))
    inter = sum(torch.relu(tau - ((separated[j] - separated[k]) ** 2).sum()) for j, k in pairs) / len(pairs)
    terms = {"ce": ce, "lifted": lifted, "intra": intra, "inter": inter}
    return sum(wk * terms[k] for wk, k in zip(w, TERMS)), terms


def _value_and_grads(fn, x, params):
    x = x.clone().requires_grad_(True)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    out = fn(x, params)
    grads = torch.autograd.grad(out, [x, *params.values()], allow_unused=True)
    return out.detach(), [
        torch.zeros_like(t) if g is None else g for g, t in zip(grads, [x, *params.values()])
    ]


def _params(loss):
    return {k: v for k, v in list(loss.named_parameters()) + list(loss.named_buffers())}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "ce_weight": 0.5,
            "lifted_weight": 2.0,
            "intra_weight": 0.3,
            "inter_weight": 0.7,
            "inter_margin": 3.0,
        },
        {"neg_margin": 0.5, "pos_margin": 0.1, "intra_weight": 1.0, "inter_weight": 1.0, "inter_margin": 2.5},
    ],
)
def test_matches_loop_reference_with_learnable_centres(kwargs):
    x, y = batch(3, 4, 5, seed=30)
    loss = _loss(**kwargs)
    with (
        torch.no_grad()
    ):  # centres of mixed norms so that some centre pairs are inside the margin, some outside
        loss.centres.mul_(torch.tensor([[0.4], [1.0], [1.6]], dtype=torch.float64))
    w = tuple(loss.term_weights[k] for k in TERMS)
    opts = {"w": w, "tau": loss.inter_margin, "neg": loss.lifted.neg_margin, "pos": loss.lifted.pos_margin}
    params = _params(loss)

    def ours(x, p):
        return functional_call(loss, p, (x, y))

    def ref(x, p):
        return reference(x, y, p["classifier.weight"], p["classifier.bias"], p["centres"], **opts)[0]

    v1, g1 = _value_and_grads(ours, x, params)
    v2, g2 = _value_and_grads(ref, x, params)
    assert torch.allclose(v1, v2, rtol=1e-10), (v1, v2)
    for name, a, b in zip(["x", *params], g1, g2):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), name
    # the inter term is neither all-active nor all-inactive in this batch (else it would test little)
    active = (loss.inter_margin - torch.cdist(loss.centres, loss.centres) ** 2)[
        torch.triu_indices(3, 3, 1).unbind()
    ]
    assert (active > 0).any() and (active < 0).any()


def test_last_terms_and_terms_match_reference():
    x, y = batch(4, 3, 6, seed=31)
    loss = _loss(num_classes=4, dim=6)
    total = loss(x, y)
    ref_total, ref_terms = reference(x, y, loss.classifier.weight, loss.classifier.bias, loss.centres)
    assert torch.allclose(total, ref_total, rtol=1e-10)
    assert set(loss.last_terms) == set(TERMS)
    for k in TERMS:
        assert not loss.last_terms[k].requires_grad
        assert torch.allclose(loss.last_terms[k], ref_terms[k], rtol=1e-10), k
        assert torch.allclose(loss.terms(x, y)[k], ref_terms[k], rtol=1e-10), k


def test_ema_matches_loop_reference_and_updates_centres():
    x, y = batch(3, 4, 5, seed=32)
    loss = _loss(centre_update="ema", centre_rate=0.5, intra_weight=0.5, inter_weight=1.0, inter_margin=3.5)
    assert "centres" in dict(loss.named_buffers()) and "centres" not in dict(loss.named_parameters())
    before = loss.centres.clone()
    xx = x.clone().requires_grad_(True)
    value = loss(xx, y)
    (g1,) = torch.autograd.grad(value, xx)
    xr = x.clone().requires_grad_(True)
    ref_value, _ = reference(
        xr,
        y,
        loss.classifier.weight,
        loss.classifier.bias,
        before,
        w=(1.0, 1.0, 0.5, 1.0),
        tau=3.5,
        ema_rate=0.5,
    )
    (g2,) = torch.autograd.grad(ref_value, xr)
    assert torch.allclose(value, ref_value, rtol=1e-10)
    assert torch.allclose(g1, g2, rtol=1e-9, atol=1e-12)
    # the stored centres moved by exactly the centre-loss update of this batch
    expected = _ema_reference(_unit(x), y.tolist(), before, 0.5)
    assert torch.allclose(loss.centres, expected, rtol=1e-12)


def test_ema_state_only_changes_in_training_forward():
    x, y = batch(3, 4, 5, seed=33)
    loss = _loss(centre_update="ema")
    start = loss.centres.clone()
    loss.terms(x, y)
    loss.details(x, y)
    assert torch.equal(loss.centres, start)
    loss.eval()
    loss(x, y)
    assert torch.equal(loss.centres, start)
    loss.train()
    loss(x, y)
    assert not torch.equal(loss.centres, start)
    frozen = _loss(centre_update="ema", centre_rate=0.0)
    c0 = frozen.centres.clone()
    frozen(x, y)
    assert torch.equal(frozen.centres, c0)


def test_ema_centres_converge_to_class_means():
    x, y = batch(3, 5, 4, seed=34)
    loss = _loss(num_classes=3, dim=4, centre_update="ema", centre_rate=0.5)
    for _ in range(80):
        loss(x, y)
    means = torch.stack([F.normalize(x, dim=1)[y == k].mean(0) for k in range(3)])
    assert torch.allclose(loss.centres, means, atol=1e-10)


def test_separation_reaches_embeddings_only_through_ema_centres():
    # learnable centres: the inter term depends on the centres alone; EMA: on the batch class means too
    x, y = batch(3, 4, 5, seed=35)
    only_inter = {
        "ce_weight": 0.0,
        "lifted_weight": 0.0,
        "intra_weight": 0.0,
        "inter_weight": 1.0,
        "inter_margin": 4.0,
    }
    for update, reaches in (("learn", False), ("ema", True)):
        loss = _loss(centre_update=update, **only_inter)
        xx = x.clone().requires_grad_(True)
        loss(xx, y).backward()
        grad = xx.grad if xx.grad is not None else torch.zeros_like(x)
        assert bool(grad.abs().max() > 1e-8) == reaches, update


@pytest.mark.parametrize("update", ["learn", "ema"])
def test_gradcheck(update):
    x, y = batch(3, 3, 4, seed=36)
    loss = _loss(dim=4, intra_weight=0.5, inter_weight=0.5, inter_margin=2.5, centre_update=update).eval()
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.requires_grad_(),))
    if update == "learn":
        params = _params(loss)
        names = list(params)

        def fn(*tensors):
            return functional_call(loss, dict(zip(names, tensors)), (x.detach(), y))

        inputs = tuple(params[k].detach().clone().requires_grad_(True) for k in names)
        assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("term", TERMS)
def test_each_term_can_be_zeroed(term):
    x, y = batch(3, 4, 5, seed=37)
    ones = {WEIGHTS[k]: 1.0 for k in TERMS}
    terms = _loss(inter_margin=3.0, **ones).terms(x, y)
    without = _loss(inter_margin=3.0, **{**ones, WEIGHTS[term]: 0.0})
    expected = sum(terms[k] for k in TERMS if k != term)
    assert torch.allclose(without(x, y), expected, rtol=1e-12)
    # and a loss made of that term alone is exactly the term
    alone = _loss(inter_margin=3.0, **{WEIGHTS[k]: float(k == term) for k in TERMS})
    assert torch.allclose(alone(x, y), terms[term], rtol=1e-12)
    assert torch.allclose(alone.last_terms[term], terms[term], rtol=1e-12)


def test_zeroed_terms_leave_their_parameters_untouched():
    x, y = batch(3, 4, 5, seed=38)
    no_centres = _loss(intra_weight=0.0, inter_weight=0.0)
    no_centres(x, y).backward()
    assert no_centres.centres.grad is None or torch.all(no_centres.centres.grad == 0)
    no_ce = _loss(ce_weight=0.0)
    no_ce(x, y).backward()
    assert no_ce.classifier.weight.grad is None or torch.all(no_ce.classifier.weight.grad == 0)


def test_lifted_alone_equals_lifted_structure_loss():
    x, y = batch(4, 4, 6, seed=39)
    loss = _loss(num_classes=4, dim=6, ce_weight=0.0, intra_weight=0.0, inter_weight=0.0, neg_margin=0.7)
    assert torch.allclose(loss(x, y), LiftedStructureLoss(neg_margin=0.7)(x, y), rtol=1e-12)
    d = loss.details(x, y)
    ref = LiftedStructureLoss(neg_margin=0.7).details(x, y)
    assert d.weights.method == "centre"
    assert torch.allclose(d.weights.positive, ref.weights.positive)
    assert torch.allclose(d.pair_gradient, ref.pair_gradient)


def test_learnable_centres_move_to_class_means():
    # only the feature-to-centre term, fixed embeddings: gradient descent on the centres ends at the class means
    x, y = batch(3, 6, 4, seed=40)
    loss = _loss(num_classes=3, dim=4, ce_weight=0.0, lifted_weight=0.0, intra_weight=1.0, inter_weight=0.0)
    opt = torch.optim.SGD([loss.centres], lr=2.0)  # ∂L/∂c_k = (n_k/B)(c_k − mean_k f̂): lr·n_k/B = 2/3
    for _ in range(60):
        opt.zero_grad()
        loss(x, y).backward()
        opt.step()
    means = torch.stack([F.normalize(x, dim=1)[y == k].mean(0) for k in range(3)])
    assert torch.allclose(loss.centres, means, atol=1e-10)


def test_separation_pushes_close_centres_apart():
    loss = _loss(num_classes=4, dim=3, ce_weight=0.0, lifted_weight=0.0, intra_weight=0.0, inter_weight=1.0)
    x, y = batch(4, 2, 3, seed=41)
    with torch.no_grad():
        loss.centres.mul_(0.1)  # all pairs far inside the margin τ = 2
    opt = torch.optim.SGD([loss.centres], lr=0.5)
    first = loss(x, y).item()
    for _ in range(200):
        opt.zero_grad()
        loss(x, y).backward()
        opt.step()
    assert first > 1.0 and loss(x, y).item() == 0.0
    sq = torch.cdist(loss.centres, loss.centres) ** 2
    assert sq[torch.triu_indices(4, 4, 1).unbind()].min() >= 2.0 - 1e-9


def test_predict():
    x, _ = batch(3, 4, 5, seed=42)
    loss = _loss()
    f = F.normalize(x, dim=1)
    assert torch.equal(loss.predict(x), (f @ loss.classifier.weight.T + loss.classifier.bias).argmax(1))
    assert torch.equal(loss.predict(x, by="centre"), torch.cdist(f, loss.centres).argmin(1))
    assert torch.allclose(loss.logits(x), f @ loss.classifier.weight.T + loss.classifier.bias)
    with pytest.raises(ValueError, match="by must be one of 'classifier', 'centre'"):
        loss.predict(x, by="knn")


def test_float32_and_device(device):
    x, y = batch(4, 4, 8, seed=43)
    ref = _loss(num_classes=4, dim=8, intra_weight=1.0, inter_weight=1.0)
    torch.manual_seed(0)
    loss = CentreStructuredLoss(num_classes=4, embedding_dim=8, intra_weight=1.0, inter_weight=1.0).to(device)
    loss.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    xx = x.float().to(device).requires_grad_(True)
    out = loss(xx, y.to(device))
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(xx.grad).all()
    assert abs(out.item() - ref(x, y).item()) < 1e-4 * max(1.0, ref(x, y).item())


def test_registered_and_built_by_name():
    loss = build_loss("centre", num_classes=5, embedding_dim=7, lifted_weight=0.5)
    assert isinstance(loss, CentreStructuredLoss) and loss.term_weights["lifted"] == 0.5
    assert loss.classifier.weight.shape == (5, 7) and loss.centres.shape == (5, 7)
    with pytest.raises(TypeError, match="bad hyper-parameter for loss 'centre'.*num_classes"):
        build_loss("centre")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_classes": 1}, ValueError, "num_classes must be >= 2"),
        ({"num_classes": 3.0}, TypeError, "num_classes must be an int"),
        ({"embedding_dim": 0}, ValueError, "embedding_dim must be >= 1"),
        ({"ce_weight": -1.0}, ValueError, "ce_weight must be a finite number >= 0"),
        ({"inter_weight": float("nan")}, ValueError, "inter_weight must be a finite number >= 0"),
        ({"inter_margin": 0.0}, ValueError, "inter_margin must be a finite number > 0"),
        ({"centre_update": "sgd"}, ValueError, "centre_update must be one of 'learn', 'ema'"),
        ({"centre_rate": 1.5}, ValueError, r"centre_rate must be in \[0, 1\]"),
        ({"neg_margin": "1"}, TypeError, "neg_margin must be a number"),
        (
            {"ce_weight": 0.0, "lifted_weight": 0.0, "intra_weight": 0.0, "inter_weight": 0.0},
            ValueError,
            "at least one of",
        ),
    ],
)
def test_bad_hyper_parameters(kwargs, error, match):
    args = {"num_classes": 3, "embedding_dim": 4, **kwargs}
    with pytest.raises(error, match=match):
        CentreStructuredLoss(**args)


def test_bad_input():
    loss = CentreStructuredLoss(num_classes=3, embedding_dim=4)
    x, y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="embeddings must have 4 columns"):
        loss(torch.randn(6, 5), y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for 3 classes"):
        loss(x, torch.tensor([0, 0, 1, 1, 3, 3]))
    assert torch.allclose(loss(x.double(), y), loss.double()(x.double(), y))  # float32 loss, float64 batch
    with pytest.raises(ValueError, match="embeddings must be 2-D"):
        loss(torch.randn(6), y)
    with pytest.raises(TypeError, match="labels must have an integer dtype"):
        loss(x, y.float())
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        loss(torch.full((6, 4), float("nan")), y)
    with pytest.raises(ValueError, match="embeddings must have 4 columns"):
        loss.predict(torch.randn(6, 3))


@pytest.mark.parametrize("labels", [[0, 1, 2], [1, 1, 1, 1, 1, 1]], ids=["no-pos", "no-neg"])
def test_batches_without_positives_or_negatives_are_finite(labels):
    loss = _loss(dim=4)
    x = torch.randn(len(labels), 4, dtype=torch.float64, requires_grad=True)
    out = loss(x, torch.tensor(labels))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    assert loss.last_terms["lifted"] == 0  # no positive (or no negative) pair: the lifted term is empty


@pytest.mark.parametrize("update", ["learn", "ema"])
def test_reset_centres_sets_class_means(update):
    x, y = batch(3, 4, 5, seed=44)
    loss = _loss(num_classes=4, centre_update=update)  # class 3 has no samples and keeps its centre
    untouched = loss.centres[3].clone()
    out = loss.reset_centres(x, y)
    means = torch.stack([F.normalize(x, dim=1)[y == k].mean(0) for k in range(3)])
    assert torch.allclose(loss.centres[:3], means, rtol=1e-12) and torch.equal(loss.centres[3], untouched)
    assert torch.equal(out, loss.centres.detach())
    # at the class means the feature-to-centre term is the mean within-class spread, and its centre gradient is 0
    if update == "learn":
        alone = _loss(num_classes=4, ce_weight=0.0, lifted_weight=0.0, intra_weight=1.0, inter_weight=0.0)
        alone.reset_centres(x, y)
        alone(x, y).backward()
        assert alone.centres.grad.abs().max() < 1e-12

"""DeMAL-CNN's hybrid loss: w_ce · CE(W e + b, y) + w_tri · triplet on (squared) distances of unit embeddings.

The reference below walks over triplets and samples in Python, written from the formulas in the docstring of
:class:`dmlbook.losses.HybridTripletLoss`; PML's TripletMarginLoss (with squared Lp distances) plus torch's
cross-entropy is an independent second check.
"""

import math

import pytest
import torch
from dml_reference import assert_pml_parity, batch, triplets

from dmlbook.losses import LOSSES, HybridTripletLoss, TripletMarginLoss, build_loss


def _reference(x, y, weight, bias, *, margin, mining, squared, w_tri, w_ce, normalize_classifier_input=False):
    """Loops over samples and triplets with scalar differentiable ops."""
    labels = y.tolist()
    n = len(labels)
    unit = [row / row.norm() for row in x]

    def delta(i, j):
        d = (unit[i] - unit[j]).norm()
        return d * d if squared else d

    if mining == "batch_hard":
        chosen = []
        for a in range(n):
            ps = [p for p in range(n) if p != a and labels[p] == labels[a]]
            ns = [q for q in range(n) if labels[q] != labels[a]]
            if ps and ns:
                chosen.append(
                    (a, max(ps, key=lambda p: delta(a, p).item()), min(ns, key=lambda q: delta(a, q).item()))
                )
    else:
        chosen = triplets(y)
    terms = []
    for a, p, q in chosen:
        if mining == "semi_hard" and not (
            delta(a, p).item() < delta(a, q).item() <= delta(a, p).item() + margin
        ):
            continue
        term = torch.relu(delta(a, p) - delta(a, q) + margin)
        if term.item() > 0:
            terms.append(term)
    l_tri = sum(terms) / len(terms) if terms else torch.zeros((), dtype=x.dtype)
    ce = 0
    for i in range(n):
        inp = unit[i] if normalize_classifier_input else x[i]
        z = weight @ inp + bias
        ce = ce - (z[labels[i]] - torch.logsumexp(z, dim=0))
    return w_tri * l_tri + w_ce * ce / n


def _with_classifier(loss, weight, bias):
    with torch.no_grad():
        loss.classifier.fc.weight.copy_(weight)
        loss.classifier.fc.bias.copy_(bias)
    return loss


def _classifier_params(k, d, seed=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, d, generator=g, dtype=dtype), torch.randn(k, generator=g, dtype=dtype)


@pytest.mark.parametrize("mining", ["batch_hard", "all", "semi_hard"])
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.3, 2.0), (0.0, 1.0), (1.0, 0.0)])
def test_matches_loop_reference(mining, squared, weights):
    w_tri, w_ce = weights
    x, y = batch(3, 4, 5, seed=11)
    weight, bias = _classifier_params(3, 5)
    loss = HybridTripletLoss(
        margin=0.3,
        mining=mining,
        squared=squared,
        triplet_weight=w_tri,
        ce_weight=w_ce,
        num_classes=3,
        embedding_dim=5,
    ).double()
    _with_classifier(loss, weight, bias)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = loss(x1, y)
    ref = _reference(x2, y, weight, bias, margin=0.3, mining=mining, squared=squared, w_tri=w_tri, w_ce=w_ce)
    assert math.isclose(ours.item(), ref.item(), rel_tol=1e-10, abs_tol=1e-12)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-12)


def test_classifier_gradient_and_normalized_input_match_reference():
    x, y = batch(2, 5, 4, seed=3)
    weight, bias = _classifier_params(2, 4, seed=7)
    loss = _with_classifier(
        HybridTripletLoss(num_classes=2, embedding_dim=4, normalize_classifier_input=True).double(),
        weight,
        bias,
    )
    w_ref, b_ref = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    ours = loss(x, y)
    ref = _reference(
        x,
        y,
        w_ref,
        b_ref,
        margin=0.2,
        mining="batch_hard",
        squared=True,
        w_tri=1.0,
        w_ce=1.0,
        normalize_classifier_input=True,
    )
    assert math.isclose(ours.item(), ref.item(), rel_tol=1e-10)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(loss.classifier.fc.weight.grad, w_ref.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(loss.classifier.fc.bias.grad, b_ref.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mining", ["batch_hard", "all"])
@pytest.mark.parametrize("squared", [True, False])
def test_gradcheck_embeddings_and_classifier(mining, squared):
    x, y = batch(3, 3, 4, seed=2)
    loss = HybridTripletLoss(
        margin=0.5, mining=mining, squared=squared, triplet_weight=0.7, num_classes=3, embedding_dim=4
    ).double()
    w, b = loss.classifier.fc.weight, loss.classifier.fc.bias

    def fn(x, w_, b_):  # the loss with the classifier's parameters as inputs (a functional call)
        return torch.func.functional_call(
            loss, {"classifier.fc.weight": w_, "classifier.fc.bias": b_}, (x, y)
        )

    inputs = (x.requires_grad_(), w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("mining", ["batch_hard", "all"])
def test_pml_parity(mining, dtype, device):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    from pytorch_metric_learning import distances, miners

    sq = distances.LpDistance(power=2)
    pml_triplet = pml_losses.TripletMarginLoss(margin=0.2, distance=sq)
    miner = miners.BatchHardMiner(distance=sq) if mining == "batch_hard" else None
    ours = HybridTripletLoss(margin=0.2, mining=mining, triplet_weight=0.5, num_classes=24, embedding_dim=32)
    ours = ours.to(device=device, dtype=dtype)

    def pml(x, y):
        tri = pml_triplet(x, y) if miner is None else pml_triplet(x, y, miner(x, y))
        return 0.5 * tri + torch.nn.functional.cross_entropy(ours.classifier(x), y)

    assert_pml_parity(ours, pml, dtype=dtype, device=device)


def test_terms_equal_their_parts(dtype, device):
    x, y = batch(4, 4, 6, seed=9, dtype=dtype, device=device)
    loss = HybridTripletLoss(margin=0.2, triplet_weight=2.0, ce_weight=0.5, num_classes=4, embedding_dim=6)
    loss = loss.to(device=device, dtype=dtype)
    total = loss(x, y)
    tri = build_loss("triplet", margin=0.2, mining="batch_hard")
    # the triplet term is TripletMarginLoss on squared distances: same mining, same reducer
    d2 = torch.cdist(torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(x, dim=1)) ** 2
    assert math.isclose(
        loss.last_terms["triplet"],
        float(tri.compute(tri._pairs(x, y, d2), details=False).loss),
        rel_tol=1e-4 if dtype == torch.float32 else 1e-9,
    )
    ce = torch.nn.functional.cross_entropy(loss.classifier(x), y)
    assert math.isclose(loss.last_terms["ce"], ce.item(), rel_tol=1e-5)
    expected = 2.0 * loss.last_terms["triplet"] + 0.5 * loss.last_terms["ce"]
    assert math.isclose(total.item(), expected, rel_tol=1e-5)
    assert total.dtype == dtype and total.device.type == torch.device(device).type


def test_without_triplet_is_cross_entropy_and_external_logits():
    x, y = batch(3, 4, 5, seed=4)
    ce_only = HybridTripletLoss(triplet_weight=0.0, num_classes=3, embedding_dim=5).double()
    expected = torch.nn.functional.cross_entropy(ce_only.classifier(x), y)
    torch.testing.assert_close(ce_only(x, y), expected)
    # logits from the caller instead of the own classifier give the same value
    external = HybridTripletLoss(margin=0.25, mining="all")
    own = _with_classifier(
        HybridTripletLoss(margin=0.25, mining="all", num_classes=3, embedding_dim=5).double(),
        *_classifier_params(3, 5, seed=1),
    )
    torch.testing.assert_close(external(x, y, logits=own.classifier(x)), own(x, y))
    # no classifier, ce_weight=0: the triplet term alone equals TripletMarginLoss on squared distances
    tri_only = HybridTripletLoss(margin=0.3, ce_weight=0.0, squared=False, mining="all")
    torch.testing.assert_close(tri_only(x, y), TripletMarginLoss(margin=0.3, mining="all")(x, y))


def test_predict_proba_and_details():
    x, y = batch(2, 6, 4, seed=6)
    loss = HybridTripletLoss(num_classes=2, embedding_dim=4).double()
    p = loss.predict_proba(x)
    assert p.shape == (12, 2) and torch.allclose(p.sum(1), torch.ones(12, dtype=p.dtype))
    info = loss.details(x, y)
    assert info.weights.method == "batch_hard" and info.weights.num_candidates == 12
    assert info.pair_gradient.shape == (12, 12) and info.matrix_kind == "distance"
    # the matrix is the squared distance of unit vectors, in [0, 4]
    u = torch.nn.functional.normalize(x, dim=1)
    torch.testing.assert_close(info.matrix, torch.cdist(u, u) ** 2, rtol=1e-9, atol=1e-9)


def test_registered_and_bad_arguments():
    assert LOSSES["demal"] is HybridTripletLoss
    assert isinstance(build_loss("demal", num_classes=2, embedding_dim=3), HybridTripletLoss)
    x, y = batch(2, 3, 4)
    with pytest.raises(ValueError, match="both 0"):
        HybridTripletLoss(triplet_weight=0.0, ce_weight=0.0)
    with pytest.raises(ValueError, match="both num_classes and embedding_dim"):
        HybridTripletLoss(num_classes=3)
    with pytest.raises(ValueError, match="triplet_weight must be a finite number >= 0"):
        HybridTripletLoss(triplet_weight=-1.0)
    with pytest.raises(ValueError, match="mining must be one of"):
        HybridTripletLoss(mining="hardest")
    with pytest.raises(TypeError, match="squared must be True or False"):
        HybridTripletLoss(squared=1)
    with pytest.raises(ValueError, match="pass logits="):
        HybridTripletLoss()(x, y)
    with pytest.raises(ValueError, match="do not also pass logits"):
        HybridTripletLoss(num_classes=2, embedding_dim=4).double()(
            x, y, logits=torch.zeros(6, 2, dtype=x.dtype)
        )
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 0\]"):
        HybridTripletLoss(num_classes=1, embedding_dim=4).double()(x, y)
    with pytest.raises(ValueError, match="no classifier"):
        HybridTripletLoss().predict_proba(x)

"""HybridLoss (cross-entropy of a classifier on the embeddings + a metric-learning term): loop references,
PML parity, float64 gradcheck, the logits hand-over to class-aware attention, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from dml_reference import assert_close_value_grad, assert_pml_parity, batch
from dml_reference import osm_caa as osm_reference
from dml_reference import triplet as triplet_reference

from dmlbook.losses import HybridLoss, OSMCAALoss, TripletMarginLoss


def _hybrid(metric, n_classes, dim, dtype=torch.float64, device="cpu", **kw):
    torch.manual_seed(0)
    return HybridLoss(metric, num_classes=n_classes, embedding_dim=dim, **kw).to(device=device, dtype=dtype)


def ce_reference(x, y, weight, bias):
    """(1/B) Σ_i −log softmax(W x_i + b)[y_i], one sample at a time."""
    total = torch.zeros((), dtype=x.dtype)
    for i in range(len(y)):
        z = weight @ x[i] + bias
        total = total - (z[y[i]] - torch.logsumexp(z, dim=0))
    return total / len(y)


def test_ce_only_matches_loop():
    x, y = batch(4, 3, 6, seed=1)
    loss = _hybrid(None, 4, 6)
    w, b = loss.classifier.fc.weight.detach(), loss.classifier.fc.bias.detach()
    assert_close_value_grad(lambda x, y: loss(x, y), lambda x, y: ce_reference(x, y, w, b), x, y)
    assert loss.pass_logits is False and float(loss.last_terms["metric"]) == 0.0


@pytest.mark.parametrize("mining", ["all", "batch_hard"])
def test_ce_plus_triplet_matches_loop(mining):
    x, y = batch(3, 4, 5, seed=2)
    loss = _hybrid(TripletMarginLoss(margin=0.2, mining=mining), 3, 5, ce_weight=0.7, metric_weight=2.0)
    w, b = loss.classifier.fc.weight.detach(), loss.classifier.fc.bias.detach()
    assert_close_value_grad(
        lambda x, y: loss(x, y),
        lambda x, y: 0.7 * ce_reference(x, y, w, b) + 2.0 * triplet_reference(x, y, 0.2, mining),
        x,
        y,
    )
    terms = loss.last_terms
    assert math.isclose(
        float(0.7 * terms["ce"] + 2.0 * terms["metric"]), float(loss(x, y).detach()), rel_tol=1e-12
    )


@pytest.mark.parametrize("attention", ["prob", "gaussian"])
def test_ce_plus_osm_caa_reads_the_shared_classifier(attention):
    """The class-aware attention a_i comes from the same classifier the cross-entropy trains."""
    x, y = batch(3, 4, 5, seed=3)
    loss = _hybrid(OSMCAALoss(attention=attention), 3, 5, metric_weight=0.5)
    assert loss.pass_logits is True
    w, b = loss.classifier.fc.weight.detach(), loss.classifier.fc.bias.detach()
    probs = F.softmax(x @ w.T + b, dim=1)[torch.arange(len(y)), y]  # p(y_i | x_i)
    a = probs if attention == "prob" else torch.exp(-((1 - probs) ** 2) / (2 * 0.68**2))
    # the weights are constants (detach_weights), so the attention's dependence on x carries no gradient
    assert_close_value_grad(
        lambda x, y: loss(x, y),
        lambda x, y: ce_reference(x, y, w, b) + 0.5 * osm_reference(x, y, a.detach()),
        x,
        y,
    )


def test_pml_parity_ce_plus_triplet(dtype, device):
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_triplet = pml_losses.TripletMarginLoss(margin=0.05)
    loss = _hybrid(TripletMarginLoss(margin=0.05), 24, 32, dtype=dtype, device=device)
    w, b = loss.classifier.fc.weight.detach(), loss.classifier.fc.bias.detach()

    def pml(x, y):
        return F.cross_entropy(x @ w.T + b, y) + pml_triplet(x, y)

    assert_pml_parity(lambda x, y: loss(x, y), pml, dtype=dtype, device=device)


@pytest.mark.parametrize("metric", [None, "triplet", "osm_caa"])
def test_gradcheck(metric):
    x, y = batch(3, 3, 4, seed=4)
    m = {None: None, "triplet": TripletMarginLoss(margin=0.5), "osm_caa": OSMCAALoss()}[metric]
    loss = _hybrid(m, 3, 4)
    if metric == "osm_caa":
        # with respect to x, gradcheck needs the weights differentiable: finite differences see them move
        live = _hybrid(OSMCAALoss(detach_weights=False), 3, 4)
        assert torch.autograd.gradcheck(lambda x: live(x, y), (x.clone().requires_grad_(),))
    else:
        assert torch.autograd.gradcheck(lambda x: loss(x, y), (x.clone().requires_grad_(),))
    # and with respect to the classifier, which the same loss trains
    w = loss.classifier.fc.weight.detach().clone().requires_grad_()
    b = loss.classifier.fc.bias.detach().clone().requires_grad_()
    emb = x.detach()

    def by_classifier(w, b):
        return torch.func.functional_call(
            loss, {"classifier.fc.weight": w, "classifier.fc.bias": b}, (emb, y)
        )

    if metric == "osm_caa":
        # the attention weights are constants (detach_weights): the metric term sends the classifier no gradient,
        # so its gradient is that of the cross-entropy alone (a finite-difference check would see the weights move)
        ours = torch.autograd.grad(by_classifier(w, b), (w, b))
        ce_only = torch.autograd.grad(F.cross_entropy(emb @ w.T + b, y), (w, b))
        for g1, g2 in zip(ours, ce_only):
            torch.testing.assert_close(g1, g2)
    else:
        assert torch.autograd.gradcheck(by_classifier, (w, b))
    loss(emb, y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.classifier.parameters())


def test_predict_and_logits():
    x, _ = batch(3, 2, 4, seed=5)
    loss = _hybrid(None, 3, 4)
    logits = loss.logits(x)
    assert logits.shape == (6, 3)
    assert loss.predict(x).tolist() == logits.argmax(dim=1).tolist()


def test_pass_logits_rules():
    assert _hybrid(OSMCAALoss(), 3, 4).pass_logits is True
    own = OSMCAALoss(num_classes=3, embedding_dim=4)  # it has its own classifier: not given ours
    assert _hybrid(own, 3, 4).pass_logits is False
    assert _hybrid(TripletMarginLoss(), 3, 4).pass_logits is False
    x, y = batch(3, 2, 4, seed=6)
    forced = _hybrid(TripletMarginLoss(), 3, 4, pass_logits=True)
    with pytest.raises(TypeError):
        forced(x, y)  # TripletMarginLoss.compute does not take logits
    with pytest.raises(ValueError, match="pass_logits=True needs a metric"):
        _hybrid(None, 3, 4, pass_logits=True)


def test_bad_input():
    x, y = batch(3, 2, 4, seed=7)
    loss = _hybrid(None, 3, 4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for 3 classes"):
        loss(x, y + 1)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(batch, 4\)"):
        loss(x[:, :3], y)
    with pytest.raises(TypeError, match="integer dtype"):
        loss(x, y.double())
    with pytest.raises(ValueError, match="num_classes must be an int >= 2"):
        HybridLoss(None, num_classes=1, embedding_dim=4)
    with pytest.raises(TypeError, match="metric must be a loss module"):
        HybridLoss("triplet", num_classes=3, embedding_dim=4)
    with pytest.raises(ValueError, match="leaves nothing to train"):
        HybridLoss(None, num_classes=3, embedding_dim=4, ce_weight=0)
    with pytest.raises(ValueError, match="metric_weight must be a finite number >= 0"):
        HybridLoss(TripletMarginLoss(), num_classes=3, embedding_dim=4, metric_weight=-1)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8], ids=str)
def test_any_integer_labels(dtype):
    x, y = batch(3, 4, 5, seed=61)
    loss = _hybrid(TripletMarginLoss(mining="batch_hard"), 3, 5)
    assert torch.equal(loss(x, y.to(dtype)), loss(x, y))

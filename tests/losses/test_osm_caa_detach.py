"""``OSMCAALoss(detach_classifier=True)``: the own classifier learns, but its cross-entropy leaves the
embeddings alone (their gradient is the metric term's only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dmlbook.losses import OSMCAALoss


def test_detached_classifier_trains_but_does_not_move_the_embeddings():
    torch.manual_seed(0)
    emb = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(4).repeat_interleave(3)
    loss_fn = OSMCAALoss(num_classes=4, embedding_dim=5, detach_classifier=True).double()
    loss = loss_fn(emb, labels)
    (grad,) = torch.autograd.grad(loss, emb, retain_graph=True)
    loss.backward()
    assert loss_fn.classifier.classifier.weight.grad.abs().sum() > 0

    logits = loss_fn.classifier.classifier(F.normalize(emb.detach(), dim=1))  # (B, C) the same classifier
    ce = F.cross_entropy(logits, labels)
    metric_only = OSMCAALoss().double()(emb, labels, logits=logits.detach())
    (expected,) = torch.autograd.grad(metric_only, emb)
    torch.testing.assert_close(loss.detach(), (metric_only + ce).detach())
    torch.testing.assert_close(grad, expected)

    attached = OSMCAALoss(num_classes=4, embedding_dim=5).double()
    attached.load_state_dict(loss_fn.state_dict())
    (grad_attached,) = torch.autograd.grad(attached(emb, labels), emb)
    assert not torch.allclose(grad_attached, grad)  # without detaching, the cross-entropy moves them

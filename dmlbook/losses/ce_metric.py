"""Classification plus metric learning: cross-entropy of a linear classifier on the embeddings, plus a weighted
metric-learning term on the same embeddings — any loss of :mod:`dmlbook.losses`.

For a batch of embeddings ``e_i`` (B, D) with labels ``y_i`` and a classifier ``z_i = W e_i + b`` (B, C)::

    L = ce_weight · (1/B) Σ_i −log softmax(z_i)[y_i]  +  metric_weight · L_metric(e, y [, z])

This is the shape of several "DML + classifier" methods: OSM + CAA (Wang et al., AAAI 2019: the classifier
trained by the cross-entropy also gives the class-aware attention, so its logits are handed to the metric term),
DeMAL-CNN (He et al. 2022; its reconstructed triplet form is :class:`~dmlbook.losses.hybrid.HybridTripletLoss`),
and the dysarthric-speech recogniser of Takashima, Takashima, Takiguchi & Ariki (*Dysarthric Speech Recognition
Based on Deep Metric Learning*, Interspeech 2020), which adds a metric-learning term to word classification.
Their exact loss, weights and network are not known here: this generic sum is our reconstruction. ``metric=None`` is plain cross-entropy, the baseline every such comparison needs, and all
variants then share the same classifier, so an ablation changes only the metric term.

The classifier sees the raw embeddings (not normalised); the metric losses normalise inside.
"""

from __future__ import annotations

import inspect

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_class_range, check_fraction, check_positive
from ..models.heads import LinearClassifier
from .base import check_loss_input

__all__ = ["HybridLoss"]


class HybridLoss(nn.Module):
    """``ce_weight · CE(classifier(e), y) + metric_weight · metric(e, y[, logits])`` (see the module docstring).

    Args:
        metric: a metric-learning loss called as ``metric(embeddings, labels)`` (any :mod:`dmlbook.losses` loss),
            or ``None`` for cross-entropy alone.
        num_classes: C, the classes of the classifier (labels must lie in ``0 .. C-1``).
        embedding_dim: D, the embedding size.
        ce_weight: weight of the cross-entropy (0 leaves the classifier untrained).
        metric_weight: weight of the metric term.
        pass_logits: hand the classifier's logits to the metric term as ``logits=`` (class-aware attention needs
            them). ``None`` (default): when the metric's ``forward`` takes ``logits`` and it has no classifier of
            its own (e.g. ``OSMCAALoss(attention="prob")`` built without ``num_classes``).
        label_smoothing: of the cross-entropy (0 = none).

    ``forward(embeddings, labels)`` -> scalar. After each call ``last_terms`` holds the detached ``"ce"`` and
    ``"metric"`` values. ``logits(embeddings)`` and ``predict(embeddings)`` use the classifier.
    """

    def __init__(
        self,
        metric: nn.Module | None,
        *,
        num_classes: int,
        embedding_dim: int,
        ce_weight: float = 1.0,
        metric_weight: float = 1.0,
        pass_logits: bool | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if metric is not None and not isinstance(metric, nn.Module):
            raise TypeError(
                f"metric must be a loss module (e.g. TripletMarginLoss()) or None; "
                f"got {type(metric).__name__}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
        self.metric = metric
        self.classifier = LinearClassifier(embedding_dim, num_classes)
        self.ce_weight = check_positive(ce_weight, "ce_weight", allow_zero=True)
        self.metric_weight = check_positive(metric_weight, "metric_weight", allow_zero=True)
        if metric is None and self.ce_weight == 0:
            raise ValueError(
                "ce_weight=0 with metric=None leaves nothing to train; give a metric or ce_weight > 0"
            )
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")
        if pass_logits is None:
            takes_logits = metric is not None and "logits" in inspect.signature(metric.forward).parameters
            pass_logits = takes_logits and getattr(metric, "classifier", None) is None
        elif not isinstance(pass_logits, bool):
            raise TypeError(f"pass_logits must be True, False or None; got {type(pass_logits).__name__}")
        if pass_logits and metric is None:
            raise ValueError("pass_logits=True needs a metric to pass the logits to")
        self.pass_logits = pass_logits
        self.last_terms: dict[str, Tensor] = {}

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    def logits(self, embeddings: Tensor) -> Tensor:
        """Class scores (B, C) of the classifier."""
        return self.classifier(embeddings)  # (B, C)

    def predict(self, embeddings: Tensor) -> Tensor:
        """The most likely class of each embedding, (B,) int64."""
        return self.logits(embeddings).argmax(dim=1)  # (B,)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        embeddings, labels = check_loss_input(embeddings, labels)
        check_class_range(labels, self.num_classes, "labels")
        logits = self.classifier(embeddings)  # (B, C)
        ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        loss = self.ce_weight * ce
        metric = None
        if self.metric is not None:
            if self.pass_logits:
                metric = self.metric(embeddings, labels, logits=logits)
            else:
                metric = self.metric(embeddings, labels)
            loss = loss + self.metric_weight * metric
        self.last_terms = {"ce": ce.detach(), "metric": (metric if metric is not None else ce * 0).detach()}
        return loss

    def extra_repr(self) -> str:
        return (
            f"ce_weight={self.ce_weight}, metric_weight={self.metric_weight}, pass_logits={self.pass_logits}, "
            f"label_smoothing={self.label_smoothing}"
        )

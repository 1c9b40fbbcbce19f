"""Hybrid loss of DeMAL-CNN: a triplet loss on the embeddings plus the cross-entropy of a shared classifier.

He, Wang, Zhao, Yao, *Deep metric attention learning for skin lesion classification in dermoscopy images*
(DeMAL-CNN), Complex & Intelligent Systems 8, 2022 (doi 10.1007/s40747-021-00587-4). The abstract (the only
part seen here) says: three weight-shared embedding networks take a triplet
(anchor, positive, negative), a triplet loss acts on their embeddings, three weight-shared classification layers
predict the classes, and the training loss is the "hybrid loss" = triplet loss + classification loss. No code is
public; the equations below are **our reconstruction**, and so are the defaults (squared
distances between L2-normalised embeddings, margin 0.2, equal weights, batch-hard mining).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .._checks import (
    check_class_range,
    check_flag,
    check_int,
    check_logits,
    check_positive,
)
from ..models.heads import LinearClassifier
from .base import LossResult, MetricLoss, Pairs, check_loss_input
from .triplet import TRIPLET_MINING, TripletMarginLoss


class HybridTripletLoss(MetricLoss):
    """``L = w_ce · L_ce + w_tri · L_tri`` (DeMAL-CNN's hybrid loss, reconstructed).

    On a batch ``{(x_i, y_i)}`` with embeddings ``e_i`` (the network's raw output) and ``ê_i = e_i / ||e_i||``:

    * triplet term on the L2-normalised embeddings, with ``δ_ij = ||ê_i − ê_j||²`` (``squared=True``, our
      reconstruction) or ``||ê_i − ê_j||``::

          L_tri = mean_{(a,p,n) mined, ℓ>0} [δ_ap − δ_an + m]₊

      (:class:`~dmlbook.losses.TripletMarginLoss` on ``δ``: ``mining="batch_hard"`` takes each anchor's farthest
      positive and closest negative, ``"all"`` every triplet of the batch, ``"semi_hard"`` those with
      ``δ_ap < δ_an ≤ δ_ap + m``; the mean runs over the non-zero terms);
    * cross-entropy of one classifier shared by every sample (the paper's three weight-shared classification
      layers: with P x K batches every sample is an anchor, positive and negative of some triplet)::

          L_ce = (1/B) Σ_i −log softmax(W e_i + b)_{y_i}       (W e_i on ê_i when normalize_classifier_input)

    Mining inside a P x K batch replaces the paper's explicit (anchor, positive, negative) inputs; batch-hard
    mining with PML's ``TripletMarginLoss`` + ``BatchHardMiner`` is the efficient equivalent of those
    explicit triplets. At inference the prediction is ``softmax(W e + b)`` of a single branch
    (:meth:`predict_proba`).

    The logits come from the loss's own classifier (``num_classes`` and ``embedding_dim`` given: a
    :class:`~dmlbook.models.LinearClassifier`, trained with the model when the loss's parameters are in the
    optimiser, as :func:`dmlbook.train.fit` does) or from the caller (``loss_fn(emb, labels, logits=...)``, e.g.
    from a classification head of the model).

    Args (keyword-only):
        margin: m of the triplet term (on squared distances of unit vectors ``δ ∈ [0, 4]``).
        triplet_weight: w_tri (0 gives cross-entropy alone, the "without triplet" ablation).
        ce_weight: w_ce (0 gives the triplet loss alone; the classifier then does not train).
        mining: ``"batch_hard"``, ``"all"`` or ``"semi_hard"``.
        squared: triplet on squared distances (the reconstruction) or on distances (PML's default form).
        num_classes, embedding_dim: give the loss its own linear classifier (both or neither).
        normalize_classifier_input: feed ``ê`` instead of ``e`` to the classifier.

    ``forward(embeddings (B, D), labels (B,), logits=None) -> scalar``; ``details()`` reports the triplet term's
    per-pair weights and ``|∂L/∂δ_ij|`` (the cross-entropy does not act on pairs). The last call's two terms
    (detached) are kept in ``last_terms`` (``{"triplet": ..., "ce": ...}``).
    """

    needs_classes = True

    def __init__(
        self,
        *,
        margin: float = 0.2,
        triplet_weight: float = 1.0,
        ce_weight: float = 1.0,
        mining: str = "batch_hard",
        squared: bool = True,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        normalize_classifier_input: bool = False,
    ) -> None:
        super().__init__()
        self.triplet = TripletMarginLoss(margin=margin, mining=mining)  # checks margin and mining
        self.margin, self.mining = self.triplet.margin, self.triplet.mining
        self.triplet_weight = check_positive(triplet_weight, "triplet_weight", allow_zero=True)
        self.ce_weight = check_positive(ce_weight, "ce_weight", allow_zero=True)
        if self.triplet_weight == 0 and self.ce_weight == 0:
            raise ValueError("triplet_weight and ce_weight are both 0: the loss would be identically zero")
        self.squared = check_flag(squared, "squared")
        self.normalize_classifier_input = check_flag(normalize_classifier_input, "normalize_classifier_input")
        if (num_classes is None) != (embedding_dim is None):
            raise ValueError(
                "give both num_classes and embedding_dim for the loss's own classifier, or neither"
            )
        self.classifier: LinearClassifier | None = None
        if num_classes is not None:
            self.classifier = LinearClassifier(
                check_int(embedding_dim, "embedding_dim"), check_int(num_classes, "num_classes")
            )
        self.method = self.triplet.method
        self.last_terms: dict[str, float] = {}

    # --------------------------------------------------------------------------------------------- pairs
    def _matrix(self, embeddings: Tensor, *, symmetric: bool = False) -> Tensor:
        from ..distances import pairwise_distances

        return pairwise_distances(embeddings, squared=self.squared, symmetric_grad=symmetric)  # (B, B) δ_ij

    def forward(self, embeddings: Tensor, labels: Tensor, logits: Tensor | None = None) -> Tensor:  # type: ignore[override]
        embeddings, labels = check_loss_input(embeddings, labels)
        matrix = self._matrix(embeddings) if self.triplet_weight > 0 else None  # (B, B)
        return self.compute(self._pairs(embeddings, labels, matrix), details=False, logits=logits).loss

    def _pairs(self, embeddings: Tensor, labels: Tensor, matrix: Tensor | None = None) -> Pairs:
        if matrix is None and self.triplet_weight == 0:  # cross-entropy alone: no B x B work
            from ..distances import label_masks

            positive, negative = label_masks(labels)  # (B, B) each
            return Pairs(embeddings.new_zeros(0, 0), positive, negative, embeddings, labels)
        return super()._pairs(embeddings, labels, matrix)

    def details(self, embeddings: Tensor, labels: Tensor, logits: Tensor | None = None):  # type: ignore[override]
        return super().details(embeddings, labels, logits=logits)

    # -------------------------------------------------------------------------------------- classifier
    def logits(self, embeddings: Tensor) -> Tensor:
        """Class scores of the own classifier: (B, D) -> (B, K)."""
        if self.classifier is None:
            raise ValueError(
                "this HybridTripletLoss has no classifier: construct it with num_classes=... and "
                "embedding_dim=... (or pass logits= to the call)"
            )
        inputs = F.normalize(embeddings, dim=1) if self.normalize_classifier_input else embeddings  # (B, D)
        weight = self.classifier.fc.weight
        if inputs.dtype != weight.dtype:  # e.g. float64 embeddings, float32 classifier: compute in its dtype
            return self.classifier(inputs.to(weight.dtype)).to(inputs.dtype)  # (B, K)
        return self.classifier(inputs)  # (B, K)

    def predict_proba(self, embeddings: Tensor) -> Tensor:
        """Class probabilities ``softmax(W e + b)`` of the own classifier: (B, D) -> (B, K)."""
        return self.logits(embeddings).softmax(dim=1)  # (B, K)

    def _cross_entropy(self, pairs: Pairs, logits: Tensor | None) -> Tensor | None:
        n = pairs.labels.shape[0]
        if self.classifier is not None:
            if logits is not None:
                raise ValueError(
                    "this HybridTripletLoss has its own classifier (num_classes=...); do not also pass logits"
                )
            check_class_range(pairs.labels, self.classifier.num_classes, "labels")
            logits = self.logits(pairs.embeddings)  # (B, K)
        elif logits is None:
            if self.ce_weight == 0:
                return None
            raise ValueError(
                "HybridTripletLoss needs class scores for its cross-entropy: pass logits= (shape "
                "(batch, num_classes)) or construct it with num_classes=... and embedding_dim=..."
            )
        else:
            logits = check_logits(logits, n)
            check_class_range(pairs.labels, logits.shape[1], "labels")
        return F.cross_entropy(logits, pairs.labels)  # mean over the batch

    # ----------------------------------------------------------------------------------------- compute
    def compute(self, pairs: Pairs, *, details: bool, logits: Tensor | None = None) -> LossResult:
        ce = self._cross_entropy(pairs, logits)
        triplet = None
        if self.triplet_weight > 0 or details:
            triplet = self.triplet.compute(pairs, details=details)
        loss = pairs.embeddings.sum() * 0  # connected zero
        if triplet is not None and self.triplet_weight > 0:
            loss = loss + self.triplet_weight * triplet.loss
        if ce is not None and self.ce_weight > 0:
            loss = loss + self.ce_weight * ce
        self.last_terms = {
            "triplet": float(triplet.loss.detach()) if triplet is not None else float("nan"),
            "ce": float(ce.detach()) if ce is not None else float("nan"),
        }
        return LossResult(loss, triplet.weights if details and triplet is not None else None)

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, triplet_weight={self.triplet_weight}, ce_weight={self.ce_weight}, "
            f"mining={self.mining!r}, squared={self.squared}, "
            f"normalize_classifier_input={self.normalize_classifier_input}"
        )


__all__ = ["TRIPLET_MINING", "HybridTripletLoss"]

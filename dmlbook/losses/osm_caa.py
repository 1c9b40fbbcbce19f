"""Weighted contrastive loss with online soft mining and class-aware attention (OSM + CAA).

Wang, Hua, Kodirov, Hu & Robertson, *Deep Metric Learning by Online Soft Mining and Class-Aware Attention*,
AAAI 2019 (arXiv 1811.01459), and its official Caffe code (commit ``d0bdc82``), whose differences from the paper
are the ``variant="official"`` option below.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import (
    check_choice,
    check_class_range,
    check_fraction,
    check_logits,
    check_positive,
)
from ..attention import (
    ATTENTION_KINDS,
    ClassAwareAttention,
    attention_from_probability,
    class_aware_attention,
    pair_attention,
)
from ..distances import as_float, normalized_pairwise_distances
from ..mining import PairWeights, osm_positive_weights, osm_weights
from .base import LossResult, MetricLoss, Pairs, check_loss_input, known_gradient

OSM_VARIANTS = ("paper", "official")


def _safe(total: Tensor) -> Tensor:
    """A sum of weights, with 0 replaced by 1 (the weighted mean of nothing is 0, with a finite gradient)."""
    return torch.where(total > 0, total, torch.ones_like(total))


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``Σ_ij a_ij b_ij`` in one pass."""
    return torch.dot(a.flatten(), b.flatten())


def _weighted_mean(weights: Tensor, values: Tensor) -> Tensor:
    """``Σ w·v / Σ w``, and 0 (with a finite gradient) when ``Σ w = 0``."""
    return (weights * values).sum() / _safe(weights.sum())


class OSMCAALoss(MetricLoss):
    """OSM + CAA weighted contrastive loss.

    On L2-normalised embeddings with ``d_ij`` Euclidean and pairs ``i ≠ j``:

    * online soft mining: ``s⁺_ij = exp(−d_ij²/σ²)`` on positives, ``s⁻_ij = [α − d_ij]₊`` on negatives;
    * class-aware attention: ``a_i`` from the class probability of sample i (``attention``: ``"prob"``
      ``a_i = p_i``, ``"gaussian"`` ``exp(−(1−p_i)²/(2·0.68²))``, ``"none"`` ``a_i = 1``), ``A_ij = min(a_i, a_j)``;
    * ``w⁺ = s⁺·A``, ``w⁻ = s⁻·A`` — constants when ``detach_weights``;
    * ``L = (1−λ)·½ Σ_P w⁺ d² / Σ_P w⁺ + λ·½ Σ_N w⁻ [α−d]₊² / Σ_N w⁻``.

    The logits come from the caller (``loss_fn(emb, labels, logits=...)``), or — when ``num_classes`` and
    ``embedding_dim`` are given — from the loss's own linear classifier on the normalised embeddings, whose
    cross-entropy is then added to the loss so that it trains (put the loss's parameters in the optimiser).
    The own classifier runs in its parameters' dtype (float32 under float16 or bfloat16 embeddings) and the loss
    comes out in the embeddings' dtype, like every other loss.

    ``variant="official"`` reproduces the official Caffe code instead (commit ``d0bdc82``): Gaussian positive kernel
    ``exp(−d²/(2σ²))`` and the whole metric term divided by the number of unordered pairs ``B(B−1)/2`` (the weighted
    means are unchanged, their halves ``½/½`` equal λ = 0.5); use it with ``attention="gaussian"``, as
    :meth:`official` does. The official code also applies Gaussian-weighted cross-entropy on three heads, which is
    not reproduced here.

    Args (keyword-only):
        sigma_osm: σ of the positive kernel.
        margin: α, the negative margin.
        lam: λ, the weight of the negative term.
        attention: ``"prob"`` (paper), ``"gaussian"`` (official code) or ``"none"`` (OSM alone).
        num_classes: with ``embedding_dim``, give the loss its own classifier (and cross-entropy).
        embedding_dim: the embedding size D for the own classifier.
        detach_weights: treat ``w⁺, w⁻`` as constants (the official code does).
        detach_classifier: train the own classifier on detached embeddings, so that its cross-entropy only
            teaches the attention and does not shape the embedding (useful when the embedding is a small head
            on frozen features, where the cross-entropy overfits the training classes; not in the paper).
        variant: ``"paper"`` or ``"official"``.
    """

    def __init__(
        self,
        *,
        sigma_osm: float = 0.8,
        margin: float = 1.2,
        lam: float = 0.5,
        attention: str = "prob",
        num_classes: int | None = None,
        embedding_dim: int | None = None,
        detach_weights: bool = True,
        detach_classifier: bool = False,
        variant: str = "paper",
    ) -> None:
        super().__init__()
        self.sigma_osm = check_positive(sigma_osm, "sigma_osm")
        self.margin = check_positive(margin, "margin")
        self.lam = check_fraction(lam, "lam")
        self.attention = check_choice(attention, ATTENTION_KINDS, "attention")
        self.variant = check_choice(variant, OSM_VARIANTS, "variant")
        self.detach_weights = bool(detach_weights)
        self.detach_classifier = bool(detach_classifier)
        if (num_classes is None) != (embedding_dim is None):
            raise ValueError(
                "give both num_classes and embedding_dim for the loss's own classifier, or neither"
            )
        self.classifier = (
            None
            if num_classes is None
            else ClassAwareAttention(embedding_dim, num_classes, kind=self.attention)  # type: ignore[arg-type]
        )
        self.method = "osm" if self.attention == "none" else "osm_caa"
        self.symmetric_pair_gradient = True  # w, A and the terms are the same for (i, j) and (j, i)

    @classmethod
    def official(cls, **kwargs) -> OSMCAALoss:
        """The official code's form: ``variant="official"``, ``attention="gaussian"`` unless given."""
        kwargs.setdefault("attention", "gaussian")
        return cls(variant="official", **kwargs)

    def forward(self, embeddings: Tensor, labels: Tensor, logits: Tensor | None = None) -> Tensor:  # type: ignore[override]
        embeddings, labels = check_loss_input(embeddings, labels)
        # one normalisation for the distances and the own classifier; the pair gradient is symmetric
        normalized, d = normalized_pairwise_distances(
            embeddings, symmetric_grad=self.symmetric_pair_gradient
        )  # (B, D), (B, B)
        pairs = self._pairs(embeddings, labels, d)
        return self.compute(pairs, details=False, logits=logits, normalized=normalized).loss

    def details(self, embeddings: Tensor, labels: Tensor, logits: Tensor | None = None):  # type: ignore[override]
        return super().details(embeddings, labels, logits=logits)

    def _attention(
        self, pairs: Pairs, logits: Tensor | None, normalized: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Per-sample attention (B,) and the cross-entropy of the own classifier (or None)."""
        if self.classifier is not None:
            if logits is not None:
                raise ValueError(
                    "this OSMCAALoss has its own classifier (num_classes=...); do not also pass logits"
                )
            linear = self.classifier.classifier
            check_class_range(pairs.labels, linear.out_features, "labels")
            if pairs.embeddings.shape[1] != linear.in_features:
                raise ValueError(
                    f"embeddings must have {linear.in_features} columns (embedding_dim of the loss's "
                    f"own classifier); got {pairs.embeddings.shape[1]}"
                )
            # the classifier runs in its own dtype (e.g. float32 under float16/bfloat16 embeddings); the
            # attention and the cross-entropy are cast back to the embeddings' dtype by the caller
            dtype = linear.weight.dtype
            if normalized is None:
                inputs = pairs.embeddings.detach() if self.detach_classifier else pairs.embeddings  # (B, D)
                attention, own_logits = self.classifier(inputs.to(dtype), pairs.labels)  # (B,), (B, C)
            else:  # the module's forward on embeddings already normalised (it would normalise them again)
                inputs = normalized.detach() if self.detach_classifier else normalized  # (B, D)
                own_logits = linear(inputs.to(dtype))  # (B, C)
                # one log-softmax serves both: the cross-entropy and p(y_i | x_i) for the attention
                log_p = (
                    F.log_softmax(own_logits, dim=1).gather(1, pairs.labels.unsqueeze(1)).squeeze(1)
                )  # (B,)
                prob = log_p.detach().exp() if self.detach_weights else log_p.exp()  # (B,)
                attention = (
                    torch.ones_like(prob)
                    if self.attention == "none"
                    else attention_from_probability(prob, self.attention, sigma=self.classifier.sigma)
                )  # (B,)
                self.classifier.last_attention = attention.detach()
                return attention, -log_p.mean()
            return attention, F.cross_entropy(own_logits, pairs.labels)
        if logits is None and self.attention != "none":
            raise ValueError(
                f"attention={self.attention!r} needs class probabilities: pass logits= (shape (batch, num_classes)) "
                "or construct OSMCAALoss(num_classes=..., embedding_dim=...) to give it its own classifier"
            )
        if logits is not None:
            check_logits(logits, pairs.labels.shape[0])
        return class_aware_attention(logits, pairs.labels, self.attention), None

    def compute(
        self, pairs: Pairs, *, details: bool, logits: Tensor | None = None, normalized: Tensor | None = None
    ) -> LossResult:
        d = pairs.matrix  # (B, B)
        attention, ce = self._attention(pairs, logits, normalized)  # (B,)
        ce = None if ce is None else ce.to(d.dtype)  # 0-dim, in the embeddings' dtype like the metric term
        if self.detach_weights and not details:
            loss = self._fast_loss(d, pairs, attention)
            return LossResult(loss if ce is None else loss + ce)
        positive, negative = (
            as_float(pairs.positive, d.dtype),
            as_float(pairs.negative, d.dtype),
        )  # (B, B) 0/1
        scale = (
            1.0 if self.variant == "paper" else 2.0 / (d.shape[0] * (d.shape[0] - 1))
        )  # official: per pair
        no_grad = torch.no_grad() if self.detach_weights else contextlib.nullcontext()
        with no_grad:
            s_pos, s_neg = osm_weights(
                d, positive, negative, sigma=self.sigma_osm, margin=self.margin, kernel=self.variant
            )  # (B, B) each
            pair_att = pair_attention(attention.to(d.dtype))  # (B, B) A_ij = min(a_i, a_j)
            w_pos, w_neg = s_pos * pair_att, s_neg * pair_att  # (B, B)
        if self.detach_weights:
            loss = self._constant_weights_loss(d, w_pos, w_neg, s_neg, scale)
        else:
            hinge = (self.margin - d).relu()  # (B, B)
            loss_p = 0.5 * _weighted_mean(w_pos, d * d)
            loss_n = 0.5 * _weighted_mean(w_neg, hinge * hinge)
            loss = ((1.0 - self.lam) * loss_p + self.lam * loss_n) * scale
        if ce is not None:
            loss = loss + ce
        if not details:
            return LossResult(loss)
        with torch.no_grad():
            candidates = int(pairs.positive.sum() + pairs.negative.sum())
            trivial = int((pairs.positive & (d == 0)).sum() + (pairs.negative & (d >= self.margin)).sum())
            weights = PairWeights(
                self.method, w_pos.detach(), w_neg.detach(), trivial, candidates, "pair", attention.detach()
            )
        return LossResult(loss, weights)

    def _fast_loss(self, d: Tensor, pairs: Pairs, attention: Tensor) -> Tensor:
        """The training path (constant weights, no details): the same value and gradient as
        :meth:`_constant_weights_loss`, in fewer passes over the B×B grid.

        Positive pairs are few (``B(K−1)`` of ``B²`` in a P×K batch), so their weights are computed on the
        gathered pair list; the negative side stays dense. ``∂L/∂d_ij = c⁺ w⁺ d`` on positives and ``−c⁻ w⁻ h`` on
        negatives (``h = [α − d]₊``, ``w⁻ = h·A``), zero elsewhere.
        """
        scale = 1.0 if self.variant == "paper" else 2.0 / (d.shape[0] * (d.shape[0] - 1))
        uniform = self.attention == "none"
        with torch.no_grad():
            dd = d.detach()  # (B, B)
            rows, cols = pairs.positive.nonzero(as_tuple=True)  # (P,), (P,) the positive pairs
            d_pos = dd[rows, cols]  # (P,)
            w_pos = osm_positive_weights(d_pos, sigma=self.sigma_osm, kernel=self.variant)  # (P,)
            if not uniform:
                a = attention.to(d.dtype)  # (B,)
                w_pos = w_pos * torch.minimum(a[rows], a[cols])  # (P,) s⁺ A
            hinge = torch.where(
                pairs.negative, (self.margin - dd).clamp_(min=0.0), 0.0
            )  # (B, B) s⁻ on N, else 0
            w_neg = hinge if uniform else hinge * pair_attention(a)  # (B, B) s⁻ A
            c_pos = (1.0 - self.lam) * scale / _safe(w_pos.sum())  # 0-dim
            c_neg = self.lam * scale / _safe(w_neg.sum())  # 0-dim
            pos_term = w_pos * d_pos  # (P,) w⁺ d
            grad = w_neg.mul_(hinge) if not uniform else hinge * hinge  # (B, B) w⁻ h
            value = 0.5 * (
                c_pos * torch.dot(pos_term, d_pos) + c_neg * _dot(grad, hinge)
            )  # ½c⁺Σw⁺d² + ½c⁻Σw⁻h²
            # ∂L/∂d = −c⁻ w⁻ h on N and c⁺ w⁺ d on P: the factor −c⁻ goes to the backward's pass over the grid, so
            # the positive entries are stored divided by it (it is −1 when no negative is active: then w⁻ h = 0)
            factor = torch.where(c_neg > 0, -c_neg, -torch.ones_like(c_neg))  # 0-dim
            grad.index_put_((rows, cols), pos_term.mul_(c_pos / factor))  # (B, B) ∂L/∂d / factor
        return known_gradient(value, d, grad, scale=factor)

    def _constant_weights_loss(
        self, d: Tensor, w_pos: Tensor, w_neg: Tensor, s_neg: Tensor, scale: float
    ) -> Tensor:
        """The metric term for constant weights, with its closed-form gradient.

        ``L = ½ c⁺ Σ w⁺ d² + ½ c⁻ Σ w⁻ h²`` with ``h = [α − d]₊``, ``c⁺ = (1−λ)/Σ w⁺``, ``c⁻ = λ/Σ w⁻`` (a zero
        sum gives a zero term), so ``∂L/∂d = c⁺ w⁺ d − c⁻ w⁻ h``. ``s⁻ = h`` wherever ``w⁻ ≠ 0``.
        """
        with torch.no_grad():
            c_pos = (1.0 - self.lam) * scale / _safe(w_pos.sum())  # 0-dim
            c_neg = self.lam * scale / _safe(w_neg.sum())  # 0-dim
            pos_term, neg_term = w_pos * d, w_neg * s_neg  # (B, B) w⁺ d, w⁻ h
            value = 0.5 * (c_pos * _dot(pos_term, d) + c_neg * _dot(neg_term, s_neg))
            grad = pos_term.mul_(c_pos).addcmul_(neg_term, c_neg, value=-1.0)  # (B, B) ∂L/∂d
        return known_gradient(value, d, grad)

    def extra_repr(self) -> str:
        return (
            f"sigma_osm={self.sigma_osm}, margin={self.margin}, lam={self.lam}, attention={self.attention!r}, "
            f"detach_weights={self.detach_weights}, variant={self.variant!r}"
        )

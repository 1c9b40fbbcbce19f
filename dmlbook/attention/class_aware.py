"""Class-aware attention (CAA), Wang, Hua, Kodirov, Hu & Robertson, *Deep Metric Learning by Online Soft Mining
and Class-Aware Attention*, AAAI 2019.

A softmax classifier trained jointly with the embedding scores each sample by how well it fits its own class;
outliers and mislabelled samples score low, so pairs that involve them count less in the metric loss.

* ``"prob"`` (the paper): ``a_i = softmax(z_i)[y_i]``, the probability of the sample's labelled class.
* ``"gaussian"`` (the official Caffe code): ``a_i = exp(−(1 − p_i)² / (2 σ²))`` with ``σ = 0.68`` — a Gaussian
  of the probability centred at 1, so that ``a ∈ [0.34, 1]`` (the code's normalising constant cancels).
* ``"none"``: ``a_i = 1`` (plain OSM, no attention).

Pair attention is ``A_ij = min(a_i, a_j)``: a pair is only as trustworthy as its less trustworthy member.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_class_range, check_int, check_logits, check_positive

ATTENTION_KINDS = ("prob", "gaussian", "none")


def class_aware_attention(
    logits: Tensor | None, labels: Tensor, kind: str = "prob", *, sigma: float = 0.68
) -> Tensor:
    """Per-sample attention ``a_i`` from classifier logits, (B, C) → (B,).

    Args:
        logits: (B, C) class scores; may be None only for ``kind="none"``.
        labels: (B,) integer class indices in [0, C).
        kind: ``"prob"`` (paper), ``"gaussian"`` (official code) or ``"none"``.
        sigma: width of the ``"gaussian"`` form (official code: 0.68).
    """
    check_choice(kind, ATTENTION_KINDS, "attention")
    if kind == "none":
        return torch.ones(
            labels.shape[0], device=labels.device, dtype=logits.dtype if logits is not None else None
        )
    if logits is None:
        raise ValueError(f"attention={kind!r} needs class logits: pass logits= or give the loss a classifier")
    check_logits(logits, labels.shape[0])
    check_class_range(labels, logits.shape[1], "labels")
    prob = F.softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)  # (B,) p(y_i | x_i)
    return attention_from_probability(prob, kind, sigma=sigma)


def attention_from_probability(prob: Tensor, kind: str = "prob", *, sigma: float = 0.68) -> Tensor:
    """``a_i`` from ``p_i = p(y_i | x_i)`` (B,) → (B,), for ``kind`` ``"prob"`` or ``"gaussian"`` (see above)."""
    if kind == "prob":
        return prob
    sigma = check_positive(sigma, "sigma")
    return torch.exp(-((1.0 - prob) ** 2) / (2.0 * sigma**2))  # (B,)


def pair_attention(attention: Tensor) -> Tensor:
    """``A_ij = min(a_i, a_j)``, (B,) → (B, B)."""
    return torch.minimum(attention.unsqueeze(0), attention.unsqueeze(1))  # (B, B)


class ClassAwareAttention(nn.Module):
    """A linear softmax classifier on L2-normalised embeddings that yields class-aware attention.

    ``forward(embeddings, labels)`` returns ``(attention (B,), logits (B, C))``; the classifier is trained by the
    cross-entropy the caller adds (``OSMCAALoss`` does this). The last attention is kept in
    ``last_attention`` (detached) for inspection.

    Args:
        embedding_dim: D, the embedding size.
        num_classes: C, the number of training classes.
        kind: ``"prob"``, ``"gaussian"`` or ``"none"``.
        sigma: width of the ``"gaussian"`` form.
    """

    def __init__(
        self, embedding_dim: int, num_classes: int, *, kind: str = "prob", sigma: float = 0.68
    ) -> None:
        super().__init__()
        embedding_dim = check_int(embedding_dim, "embedding_dim", 1)
        num_classes = check_int(num_classes, "num_classes", 2)
        self.kind = check_choice(kind, ATTENTION_KINDS, "attention")
        self.sigma = check_positive(sigma, "sigma")
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.last_attention: Tensor | None = None

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        if embeddings.dim() != 2 or embeddings.shape[1] != self.classifier.in_features:
            raise ValueError(
                f"embeddings must have shape (batch, {self.classifier.in_features}); got {tuple(embeddings.shape)}"
            )
        logits = self.classifier(F.normalize(embeddings, dim=1))  # (B, C)
        attention = class_aware_attention(logits, labels, self.kind, sigma=self.sigma)  # (B,)
        self.last_attention = attention.detach()
        return attention, logits

"""The call contract every dmlbook loss shares, and what it can show a notebook.

``loss_fn(embeddings, labels)`` validates its input, builds the pair grid once (distances or cosine similarities
of the L2-normalised embeddings, and the positive/negative masks) and hands it to the loss's ``compute``.
``loss_fn.details(embeddings, labels)`` runs the same computation on a detached batch and returns a
:class:`LossDetails`: the loss, the mining method's per-pair weights and trivial-tuple count
(:class:`dmlbook.mining.PairWeights`), and ``|∂L/∂m_ij|`` for every pair — the share of the gradient each pair
carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import check_embeddings_labels, check_real
from ..distances import cosine_similarity_matrix, label_masks, pairwise_distances
from ..mining import PairWeights

__all__ = ["LossDetails", "LossResult", "MetricLoss", "Pairs", "mean_of_nonzero", "zero_loss"]
__all__ += ["check_loss_input", "check_margin", "count", "known_gradient"]


@dataclass(frozen=True)
class Pairs:
    """One batch on the pair grid.

    Attributes:
        matrix: (B, B) distances ``d_ij`` (or similarities ``s_ij`` for a similarity-based loss).
        positive: (B, B) bool, same label and ``i ≠ j``.
        negative: (B, B) bool, different label.
        embeddings: (B, D) the raw embeddings (for losses with a classifier).
        labels: (B,) integer labels.
    """

    matrix: Tensor
    positive: Tensor
    negative: Tensor
    embeddings: Tensor
    labels: Tensor


@dataclass(frozen=True)
class LossResult:
    loss: Tensor
    weights: PairWeights | None = None


@dataclass(frozen=True)
class LossDetails:
    """Everything a notebook may want to see about one loss evaluation (all detached).

    Attributes:
        loss: the scalar loss.
        weights: the mining method's per-pair weights and trivial-tuple count.
        pair_gradient: ``|∂L/∂m_ij|`` where ``m`` is ``matrix``: (B, B) for a pair-based loss, (B, P) for a proxy
            loss (one column per proxy or class centre).
        matrix: the distances (or similarities) the loss saw: (B, B) between samples, or (B, P) from each sample
            to each proxy.
        matrix_kind: ``"distance"``, ``"similarity"``, or ``"proxy_similarity"`` for the (B, P) grids.
    """

    loss: Tensor
    weights: PairWeights
    pair_gradient: Tensor
    matrix: Tensor
    matrix_kind: str


def check_loss_input(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The ``(embeddings, labels)`` every loss takes, checked, with the labels as int64 on the embeddings' device.

    Any integer dtype is accepted for the labels (int32, uint8, ...): torch's cross-entropy, ``gather`` and
    indexing want int64 (a uint8 index would even be read as a boolean mask), so they are converted here, once,
    for every loss.
    """
    embeddings, labels = check_embeddings_labels(embeddings, labels)
    return embeddings, labels if labels.dtype == torch.int64 else labels.long()


def check_margin(
    value: float, name: str, *, why: str = "it is a margin on distances, which are never negative"
) -> float:
    """A margin: a finite number >= 0. Raises ValueError naming ``name`` and saying ``why`` a negative one makes
    no sense."""
    value = check_real(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0 ({why}); got {value}")
    return value


def zero_loss(reference: Tensor) -> Tensor:
    """A zero that stays connected to the graph (finite, zero gradient)."""
    return (reference * 0).sum()


class _KnownGradient(torch.autograd.Function):
    """A scalar computed without autograd, with its gradient w.r.t. the pair matrix supplied by the caller."""

    @staticmethod
    def forward(ctx, matrix: Tensor, value: Tensor, grad: Tensor, scale: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(grad, scale)
        return value.clone()

    @staticmethod
    def backward(ctx, upstream: Tensor):  # type: ignore[override]
        grad, scale = ctx.saved_tensors
        factor = upstream if scale is None else upstream * scale  # 0-dim
        return grad * factor, None, None, None  # (B, B)


def known_gradient(value: Tensor, matrix: Tensor, grad: Tensor, scale: Tensor | None = None) -> Tensor:
    """``value`` (0-dim, computed under no_grad) made differentiable w.r.t. ``matrix`` with
    ``∂value/∂matrix = grad`` (times the 0-dim ``scale`` when given: it is folded into the backward's one pass).

    For a loss whose pair gradient has a closed form: one B×B pass in the backward instead of autograd's chain.
    """
    return _KnownGradient.apply(matrix, value, grad, scale)


def count(mask: Tensor) -> Tensor:
    """Number of ones in a 0/1 float mask, a 0-dim tensor; exact (summed in float64 where the dtype could round)."""
    exact = mask.dtype == torch.float64 or (mask.dtype == torch.float32 and mask.numel() < 2**24)
    return mask.sum() if exact else mask.sum(dtype=torch.float64)


def mean_of_nonzero(values: Tensor) -> Tensor:
    """Mean of the strictly positive entries (PML's ``AvgNonZeroReducer``); a connected zero if there are none."""
    count = (values > 0).sum()
    return values.sum() / count.clamp(min=1).to(values.dtype)


class MetricLoss(nn.Module):
    """Base class: ``forward(embeddings, labels, **extra) -> scalar``.

    A subclass sets ``method`` (its mining method's name), ``matrix_kind`` (``"distance"`` or ``"similarity"``) and
    implements ``compute(pairs, *, details, **extra) -> LossResult``; with ``details=True`` it must fill
    ``LossResult.weights``. A loss whose gradient on the pair grid is symmetric, ``∂L/∂m_ij = ∂L/∂m_ji``, sets
    ``symmetric_pair_gradient = True`` and ``forward`` uses the cheaper backward of the pair matrix.
    """

    method: str = "none"
    matrix_kind: str = "distance"
    symmetric_pair_gradient: bool = False
    #: the loss trains its own classifier (or class centres): a trainer passes ``num_classes`` and ``embedding_dim``
    needs_classes: bool = False

    def _matrix(self, embeddings: Tensor, *, symmetric: bool = False) -> Tensor:
        if self.matrix_kind == "similarity":
            return cosine_similarity_matrix(embeddings, symmetric_grad=symmetric)  # (B, B)
        return pairwise_distances(embeddings, symmetric_grad=symmetric)  # (B, B)

    def _pairs(self, embeddings: Tensor, labels: Tensor, matrix: Tensor | None = None) -> Pairs:
        matrix = self._matrix(embeddings) if matrix is None else matrix  # (B, B)
        positive, negative = label_masks(labels)  # (B, B) each
        return Pairs(matrix, positive, negative, embeddings, labels)

    def forward(self, embeddings: Tensor, labels: Tensor, **extra) -> Tensor:  # type: ignore[override]
        embeddings, labels = check_loss_input(embeddings, labels)
        matrix = self._matrix(embeddings, symmetric=self.symmetric_pair_gradient)  # (B, B)
        return self.compute(self._pairs(embeddings, labels, matrix), details=False, **extra).loss

    def compute(self, pairs: Pairs, *, details: bool, **extra) -> LossResult:
        raise NotImplementedError

    def details(self, embeddings: Tensor, labels: Tensor, **extra) -> LossDetails:
        """Evaluate the loss on a detached copy of the batch and report its weights and per-pair gradient."""
        embeddings, labels = check_loss_input(embeddings, labels)
        embeddings = embeddings.detach()
        with torch.enable_grad():
            matrix = self._matrix(embeddings).detach().requires_grad_(True)
            result = self.compute(self._pairs(embeddings, labels, matrix), details=True, **extra)
            if result.loss.requires_grad:
                (grad,) = torch.autograd.grad(result.loss, matrix, allow_unused=True)
            else:
                grad = None
        grad = torch.zeros_like(matrix) if grad is None else grad.abs()
        assert result.weights is not None, (
            f"{type(self).__name__}.compute must fill weights when details=True"
        )
        return LossDetails(
            result.loss.detach(), result.weights, grad.detach(), matrix.detach(), self.matrix_kind
        )

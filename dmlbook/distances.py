"""Pairwise geometry of a batch: L2 normalisation, Euclidean distances, cosine similarities, label masks.

Every loss in dmlbook starts here. Conventions (the same as pytorch-metric-learning's defaults):

* embeddings are L2-normalised first, ``x̂_i = x_i / max(||x_i||, 1e-12)``;
* ``d_ij = ||x̂_i − x̂_j||₂`` (so ``d ∈ [0, 2]`` and ``d² = 2 − 2 s_ij``), ``s_ij = x̂_i · x̂_j``;
* positive pairs are ordered pairs ``(i, j)``, ``i ≠ j``, with ``y_i = y_j``; negative pairs have ``y_i ≠ y_j``.

The distance and similarity matrices are custom autograd functions: the backward pass needs one matrix product
(``(G + Gᵀ) X``) instead of the two that autograd records for ``X Xᵀ``, which is most of the cost of a
metric-learning loss on a CPU. Coincident points (``d = 0``, e.g. the diagonal) get a zero gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "l2_normalize",
    "pairwise_distances",
    "cosine_similarity_matrix",
    "label_masks",
]


def l2_normalize(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (eps 1e-12, as ``F.normalize``)."""
    return F.normalize(x, p=2.0, dim=1)  # (B, D)


class _SelfGram(torch.autograd.Function):
    """``G = X Xᵀ`` with the one-product backward ``dX = (dG + dGᵀ) X``."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x @ x.T  # (B, B)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return (grad + grad.T) @ x  # (B, D)


class _SelfDistance(torch.autograd.Function):
    """``d_ij = ||x_i − x_j||`` (or its square) from one Gram matrix.

    Forward: ``d²_ij = n_i + n_j − 2 x_i·x_j`` with ``n_i = ||x_i||²``, clamped at 0, diagonal exactly 0.
    Backward: with ``g_ij = ∂L/∂d²_ij`` and ``S = g + gᵀ``: ``∂L/∂x_k = 2 x_k Σ_j S_kj − 2 (S X)_k``.
    All B×B work is done in place, since on a CPU these passes cost as much as the matrix products.
    """

    @staticmethod
    def forward(ctx, x: Tensor, squared: bool) -> Tensor:  # type: ignore[override]
        norms = (x * x).sum(dim=1)  # (B,)
        out = torch.addmm(norms.unsqueeze(1), x, x.T, alpha=-2.0)  # (B, B) n_i − 2 x_i·x_j
        out.add_(norms.unsqueeze(0)).clamp_(min=0.0)  # (B, B) d²
        out.diagonal().zero_()  # exactly 0, not the rounding error of n_i + n_i − 2 x_i·x_i
        if not squared:
            out.sqrt_()  # (B, B) d
        ctx.squared = squared
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, out = ctx.saved_tensors
        if ctx.squared:
            g = grad.clone()
        else:  # ∂d/∂d² = 1 / (2d); zero where the points coincide (d = 0)
            g = grad / out
            g.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).mul_(0.5)  # (B, B)
        g.add_(g.T.contiguous())  # (B, B) S = g + gᵀ
        rows = g.sum(dim=1, keepdim=True)  # (B, 1)
        grad_x = torch.addmm(rows * x, g, x, alpha=-1.0).mul_(2.0)  # (B, D) 2 (x Σ_j S − S X)
        return grad_x, None


def pairwise_distances(embeddings: Tensor, *, normalize: bool = True, squared: bool = False) -> Tensor:
    """Euclidean distance matrix ``d_ij = ||x̂_i − x̂_j||`` of a batch, (B, D) → (B, B).

    Args:
        embeddings: (B, D) float tensor.
        normalize: L2-normalise the rows first (the convention of every dmlbook loss).
        squared: return ``d²`` instead of ``d``.
    """
    x = l2_normalize(embeddings) if normalize else embeddings  # (B, D)
    return _SelfDistance.apply(x, squared)  # (B, B)


def cosine_similarity_matrix(embeddings: Tensor, *, normalize: bool = True) -> Tensor:
    """Similarity matrix ``s_ij = x̂_i · x̂_j``, (B, D) → (B, B)."""
    x = l2_normalize(embeddings) if normalize else embeddings  # (B, D)
    return _SelfGram.apply(x)  # (B, B)


def label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean masks of the positive pairs (same label, ``i ≠ j``) and negative pairs (different label).

    Returns:
        ``(positive, negative)``, each (B, B) bool.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)  # (B, B)
    negative = ~same
    same.fill_diagonal_(False)
    return same, negative

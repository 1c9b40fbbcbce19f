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
    "as_float",
    "cosine_similarity_matrix",
    "l2_normalize",
    "label_masks",
    "normalized_pairwise_distances",
    "pairwise_distances",
    "same_label",
]


def l2_normalize(x: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (eps 1e-12, as ``F.normalize``)."""
    return F.normalize(x, p=2.0, dim=1)  # (B, D)


_EPS = 1e-12  # F.normalize's floor on the row norm


def _normalize(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``x̂ = x / r`` with ``r = max(||x||, eps)``; also returns ``r`` and where the floor is inactive, (B, 1) each."""
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # (B, 1)
    r = norm.clamp(min=_EPS)  # (B, 1)
    return x / r, r, norm >= _EPS  # (B, D), (B, 1), (B, 1)


def _normalize_backward(grad: Tensor, x_hat: Tensor, r: Tensor, inside: Tensor, scale: float) -> Tensor:
    """``∂L/∂x = scale · (g − x̂ (x̂·g)) / r`` for ``g = ∂L/∂x̂`` (rows on the eps floor: ``scale · g / eps``).

    Written by hand because autograd's backward of ``F.normalize`` costs about a 512³ matrix product on a CPU.
    Works in place on ``grad``.
    """
    along = torch.linalg.vecdot(x_hat, grad).unsqueeze(1) * inside  # (B, 1) x̂·g, 0 on the floor
    return grad.addcmul_(x_hat, along, value=-1.0).mul_(scale / r)  # (B, D)


def _backward(grad_x_hat: Tensor, saved: tuple[Tensor, ...], normalize: bool, scale: float) -> Tensor:
    """Finish a pair-matrix backward: scale, then chain through the L2 normalisation if there was one."""
    if not normalize:
        return grad_x_hat.mul_(scale)  # (B, D)
    x_hat, r, inside = saved
    return _normalize_backward(grad_x_hat, x_hat, r, inside, scale)  # (B, D)


_SPLIT_MIN = 256  # below this (B or D) one product is faster than three smaller ones


def _add_gram_(out: Tensor, x: Tensor, *, alpha: float, beta: float) -> Tensor:
    """``out ← β·out + α·X Xᵀ`` in place, for a symmetric ``β·out``; (B, D) → (B, B).

    ``X Xᵀ`` is symmetric, so for a large batch only the top row panel and the bottom-right block are products
    (¾ of the multiply-adds) and the bottom-left block is the mirror of the top-right one. ``β = 0`` ignores
    ``out``'s contents (it may be uninitialised).
    """
    b, dim = x.shape
    if b < _SPLIT_MIN or dim < _SPLIT_MIN:
        return out.addmm_(x, x.T, beta=beta, alpha=alpha)  # (B, B)
    h = b // 2
    out[:h].addmm_(x[:h], x.T, beta=beta, alpha=alpha)  # (h, B) top row panel
    out[h:, h:].addmm_(x[h:], x[h:].T, beta=beta, alpha=alpha)  # (B − h, B − h)
    out[h:, :h].copy_(out[:h, h:].T)  # (B − h, h) the mirror of the top-right block
    return out


class _SelfGram(torch.autograd.Function):
    """``G = X̂ X̂ᵀ`` (``X̂`` the rows of X, L2-normalised if asked) with the one-product backward ``dX̂ = (dG + dGᵀ) X̂``.

    With ``symmetric`` the caller promises ``dG = dGᵀ`` and ``dX̂ = 2 dG X̂`` skips the transposed add.
    """

    @staticmethod
    def forward(ctx, x: Tensor, normalize: bool, symmetric: bool) -> Tensor:  # type: ignore[override]
        r = inside = x
        if normalize:
            x, r, inside = _normalize(x)  # (B, D), (B, 1), (B, 1)
        ctx.normalize, ctx.symmetric = normalize, symmetric
        ctx.save_for_backward(x, r, inside)
        out = torch.empty(x.shape[0], x.shape[0], dtype=x.dtype, device=x.device)  # (B, B)
        return _add_gram_(out, x, alpha=1.0, beta=0.0)  # (B, B)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x_hat, r, inside = ctx.saved_tensors
        if ctx.symmetric:
            grad_x_hat, scale = grad @ x_hat, 2.0  # (B, D) dG X̂, times 2 below
        else:
            grad_x_hat, scale = (grad + grad.T) @ x_hat, 1.0  # (B, D)
        return _backward(grad_x_hat, (x_hat, r, inside), ctx.normalize, scale), None, None


class _SelfDistance(torch.autograd.Function):
    """``d_ij = ||x̂_i − x̂_j||`` (or its square) from one Gram matrix; ``x̂`` the rows, L2-normalised if asked.

    Forward: ``d²_ij = (n_i + n_j) − 2 x̂_i·x̂_j`` with ``n_i = ||x̂_i||²``, clamped at 0, diagonal exactly 0.
    Backward: with ``g_ij = ∂L/∂d²_ij`` and ``S = g + gᵀ``: ``∂L/∂x̂_k = 2 x̂_k Σ_j S_kj − 2 (S X̂)_k``, then
    through the normalisation ``∂L/∂x_k = (I − x̂_k x̂_kᵀ) ∂L/∂x̂_k / r_k``. With ``symmetric`` the caller promises
    ``g = gᵀ`` (true of any loss that treats ``(i, j)`` and ``(j, i)`` alike), so ``S = 2g`` skips the transposed
    add. All B×B work is done in place, since on a CPU these passes cost as much as the matrix products.

    Returns ``(d, x̂)``; ``x̂`` is differentiable too, so a loss can use the normalised embeddings elsewhere (a
    classifier) without normalising twice.
    """

    @staticmethod
    def forward(ctx, x: Tensor, squared: bool, normalize: bool, symmetric: bool):  # type: ignore[override]
        r = inside = x
        if normalize:
            x, r, inside = _normalize(x)  # (B, D), (B, 1), (B, 1)
        norms = torch.linalg.vecdot(x, x)  # (B,)
        out = norms.unsqueeze(1) + norms.unsqueeze(0)  # (B, B) n_i + n_j
        _add_gram_(out, x, alpha=-2.0, beta=1.0).clamp_(min=0.0)  # (B, B) d²
        out.diagonal().zero_()  # exactly 0, not the rounding error of n_i + n_i − 2 x_i·x_i
        if not squared:
            out.sqrt_()  # (B, B) d
        ctx.squared, ctx.normalize, ctx.symmetric = squared, normalize, symmetric
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, out, r, inside)
        return out, x

    @staticmethod
    def backward(ctx, grad: Tensor | None, grad_x_hat: Tensor | None):  # type: ignore[override]
        x_hat, out, r, inside = ctx.saved_tensors
        if grad is None:
            grad_x_hat = torch.zeros_like(x_hat) if grad_x_hat is None else grad_x_hat.clone()
            return _backward(grad_x_hat, (x_hat, r, inside), ctx.normalize, 1.0), None, None, None
        # t = 2g: ∂d/∂d² = 1 / (2d), zero where the points coincide (d = 0)
        t = grad if ctx.squared else (grad / out).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)  # (B, B)
        if ctx.symmetric:  # S = 2g = t (not squared) or 2·grad (squared)
            s, scale = t, 2.0 if ctx.squared else 1.0
        else:  # S = g + gᵀ = (t + tᵀ) / 2 (not squared) or grad + gradᵀ (squared)
            s, scale = t + t.T, 1.0 if ctx.squared else 0.5
        rows = s.sum(dim=1, keepdim=True)  # (B, 1)
        # ∂L/∂x̂ = 2 scale (x̂ Σ_j s − s X̂)
        grad_all = torch.addmm(rows * x_hat, s, x_hat, alpha=-1.0)  # (B, D)
        if grad_x_hat is not None:  # the normalised embeddings were used too
            grad_all.add_(grad_x_hat, alpha=0.5 / scale)
        return _backward(grad_all, (x_hat, r, inside), ctx.normalize, 2.0 * scale), None, None, None


def pairwise_distances(
    embeddings: Tensor, *, normalize: bool = True, squared: bool = False, symmetric_grad: bool = False
) -> Tensor:
    """Euclidean distance matrix ``d_ij = ||x̂_i − x̂_j||`` of a batch, (B, D) → (B, B).

    Args:
        embeddings: (B, D) float tensor.
        normalize: L2-normalise the rows first (the convention of every dmlbook loss).
        squared: return ``d²`` instead of ``d``.
        symmetric_grad: promise that the gradient reaching ``d`` is symmetric, ``∂L/∂d_ij = ∂L/∂d_ji`` (a loss
            that treats both orders of a pair alike); the backward then skips a transposed B×B add. The GEMM's
            ``d`` is symmetric only to rounding, so the result differs from the general path at that level.
    """
    return _SelfDistance.apply(embeddings, squared, normalize, symmetric_grad)[0]  # (B, B)


def normalized_pairwise_distances(
    embeddings: Tensor, *, squared: bool = False, symmetric_grad: bool = False
) -> tuple[Tensor, Tensor]:
    """``(x̂, d)``: the L2-normalised embeddings (B, D) and their distance matrix (B, B), both differentiable.

    As :func:`pairwise_distances`, for a loss that also feeds ``x̂`` to something else (a classifier): one
    normalisation and one hand-written backward for both uses.
    """
    d, x_hat = _SelfDistance.apply(embeddings, squared, True, symmetric_grad)  # (B, B), (B, D)
    return x_hat, d


def cosine_similarity_matrix(
    embeddings: Tensor, *, normalize: bool = True, symmetric_grad: bool = False
) -> Tensor:
    """Similarity matrix ``s_ij = x̂_i · x̂_j``, (B, D) → (B, B); ``symmetric_grad`` as in :func:`pairwise_distances`."""
    return _SelfGram.apply(embeddings, normalize, symmetric_grad)  # (B, B)


def label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean masks of the positive pairs (same label, ``i ≠ j``) and negative pairs (different label).

    Returns:
        ``(positive, negative)``, each (B, B) bool.
    """
    same = same_label(labels, torch.float32).bool()  # (B, B)
    negative = ~same
    same.fill_diagonal_(False)
    return same, negative


def same_label(labels: Tensor, dtype: torch.dtype) -> Tensor:
    """``[y_i = y_j]`` as a 0/1 matrix of ``dtype``, diagonal included, (B,) → (B, B).

    The labels are compared as float32, exactly: as they are when all lie in ``[−2²⁴, 2²⁴]``, else renumbered
    ``0 … C−1`` first. On a CPU, integer comparisons and bool outputs take paths many times slower than float ones.
    """
    low, high = torch.aminmax(labels)
    if -(2**24) <= int(low) and int(high) <= 2**24:
        ids = labels.to(torch.float32)  # (B,) exact
    else:
        ids = torch.unique(labels, return_inverse=True)[1].to(torch.float32)  # (B,)
    out = torch.empty(ids.shape[0], ids.shape[0], dtype=dtype, device=labels.device)  # (B, B)
    return torch.eq(ids.unsqueeze(1), ids.unsqueeze(0), out=out)  # (B, B)


def as_float(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A bool mask as a 0/1 tensor of ``dtype`` (through uint8: a direct bool → float cast is slow on a CPU)."""
    return mask.view(torch.uint8).to(dtype)

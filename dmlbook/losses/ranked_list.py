"""Ranked List Loss (Wang, Hua, Kodirov & Robertson, *Ranked List Loss for Deep Metric Learning*, TPAMI; CVPR 2019)."""
from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_choice, check_fraction, check_positive, check_real
from ..distances import l2_normalize
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs

RLL_VARIANTS = ("paper", "official")


def query_side_distances(embeddings: Tensor, active: Tensor) -> Tensor:
    """``d_ij = ||x̂_i − sg(x̂_j)||`` on the ``active`` pairs: the value of the distance matrix, with a gradient that
    reaches only the query ``x_i`` (the reference ``x_j`` is a constant). Entries outside ``active`` and coincident
    points are 0 with no gradient. (B, D), (B, B) bool → (B, B)."""
    x = l2_normalize(embeddings)  # (B, D)
    ref = x.detach()  # (B, D)
    sq = (x * x).sum(dim=1, keepdim=True) + (ref * ref).sum(dim=1).unsqueeze(0) - 2.0 * x @ ref.T  # (B, B)
    ok = active & (sq.detach() > 0)  # (B, B)
    safe = torch.where(ok, sq, torch.ones_like(sq))  # (B, B) no 1/sqrt(0) in the backward pass
    return torch.where(ok, safe.sqrt(), torch.zeros_like(sq))  # (B, B)


class RankedListLoss(MetricLoss):
    """Each sample is a query; the rest of the batch is its ranked list.

    Two boundaries: negatives are pushed beyond ``α``, positives pulled inside ``α − m`` (a ball of diameter
    ``α − m`` per class instead of a point). Only non-trivial pairs are mined,
    ``P*_i = {j ≠ i: y_j = y_i, d_ij > α − m}``, ``N*_i = {j: y_j ≠ y_i, d_ij < α}``, and weighted
    ``w_ij = e^{T_p (d_ij − (α − m))}`` (positives), ``w_ij = e^{T_n (α − d_ij)}`` (negatives):

    ``L_P(i) = Σ_{P*_i} w (d − (α − m)) / Σ w``,  ``L_N(i) = Σ_{N*_i} w (α − d) / Σ w``,
    ``L = 1/B Σ_i (1 − λ) L_P(i) + λ L_N(i)``.

    ``alpha=None`` gives the TPAMI paper's "RLL-Simpler" ``α = 1 + m/2`` (and ``T_p = 0``, ``λ = 0.5``: the
    defaults). Gradients flow through the weights and each denominator carries PML's ``+1e-5`` per batch entry,
    so that this equals PML 2.9's ``RankedListLoss(margin, Tn)``.

    Two variants of the same mining and weights (Wang, Hua, Kodirov & Robertson, TPAMI; the released Caffe layer
    ``DistanceWeightedValidPairLossV12`` of the TPAMI-era code):

    ======================  ===========================================  ===============================================
    ``variant``             ``"paper"`` (default, = PML 2.9)             ``"official"`` (released code)
    ======================  ===========================================  ===============================================
    weight of query i       ``1/B``                                      ``S_i / Σ_k S_k``, ``S_i = Σ_{P*_i} w + Σ_{N*_i} w``
    pair weights ``w``      differentiable                               constants (no gradient)
    denominators            ``Σ w + 1e-5·B`` (PML)                       ``Σ w`` (an empty set gives no term)
    gradient of a pair      to both ends, ``∂d_ij/∂x_i`` and ``∂x_j``    only to the query's end: ``||x̂_i − sg(x̂_j)||``
    ======================  ===========================================  ===============================================

    ``"official"``: ``L = Σ_i (S_i/S) [ (1 − λ) Σ_{P*_i} w (d − (α − m)) / Σ w + λ Σ_{N*_i} w (α − d) / Σ w ]`` with
    ``w`` and ``S_i`` constants and ``d_ij = ||x̂_i − sg(x̂_j)||``. Its gradient is the code's: the hinge on ``d``
    (unit vector ``(x̂_i − x̂_j)/d_ij``), each query's positives normalised within ``P*_i`` and scaled by ``1 − λ``,
    its negatives within ``N*_i`` and scaled by ``λ`` (the code's ½ and ½ at the default λ = 0.5), each query
    scaled by ``S_i/S``, and ``x_i`` receiving only the gradient of its own ranked list. The code's forward value
    (a plain contrastive loss, for monitoring) is not reproduced; the value here is the weighted ranked-list loss
    whose gradient the code applies. Coincident negatives (``d = 0``) have no direction and are left out, as in
    the paper variant.

    Args:
        margin: m, the gap between the positive and negative boundaries.
        Tn: temperature of the negative weights.
        imbalance: λ, the weight of the negative part.
        alpha: α, the negative boundary (None: ``1 + margin/2``).
        Tp: temperature of the positive weights.
        variant: ``"paper"`` or ``"official"`` (see the table).
    """

    method = "ranked_list"
    eps = 1e-5

    def __init__(
        self,
        margin: float = 0.4,
        Tn: float = 10.0,
        imbalance: float = 0.5,
        alpha: float | None = None,
        Tp: float = 0.0,
        variant: str = "paper",
    ) -> None:
        super().__init__()
        self.margin = check_positive(margin, "margin", allow_zero=True)
        self.Tn = check_real(Tn, "Tn")
        self.Tp = check_real(Tp, "Tp")
        self.imbalance = check_fraction(imbalance, "imbalance")
        self.alpha = 1.0 + self.margin / 2.0 if alpha is None else check_real(alpha, "alpha")
        self.variant = check_choice(variant, RLL_VARIANTS, "variant")

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        d = pairs.matrix  # (B, B)
        inner = self.alpha - self.margin  # the positive boundary α − m
        pos_star = pairs.positive & (d > inner)  # (B, B) P*
        neg_star = pairs.negative & (d < self.alpha) & (d > 0)  # (B, B) N*
        ninf = torch.full_like(d, float("-inf"))
        w_pos = torch.exp(torch.where(pos_star, self.Tp * (d - inner), ninf))  # (B, B)
        w_neg = torch.exp(torch.where(neg_star, self.Tn * (self.alpha - d), ninf))  # (B, B)
        if self.variant == "official":
            loss = self._official(pairs, w_pos.detach(), w_neg.detach(), pos_star, neg_star, details)
            w_pos, w_neg = w_pos.detach(), w_neg.detach()
        else:
            loss = self._paper(d, w_pos, w_neg)
        if not details:
            return LossResult(loss)
        candidates = int(pairs.positive.sum() + pairs.negative.sum())
        trivial = candidates - int(pos_star.sum() + neg_star.sum())
        weights = PairWeights(self.method, w_pos.detach(), w_neg.detach(), trivial, candidates, "pair")
        return LossResult(loss, weights)

    def _paper(self, d: Tensor, w_pos: Tensor, w_neg: Tensor) -> Tensor:
        inner = self.alpha - self.margin
        pad = self.eps * d.shape[1]
        loss_p = (w_pos * (d - inner)).sum(dim=1) / (w_pos.sum(dim=1) + pad)  # (B,)
        loss_n = (w_neg * (self.alpha - d)).sum(dim=1) / (w_neg.sum(dim=1) + pad)  # (B,)
        return ((1.0 - self.imbalance) * loss_p + self.imbalance * loss_n).mean()

    def _official(
        self, pairs: Pairs, w_pos: Tensor, w_neg: Tensor, pos_star: Tensor, neg_star: Tensor, details: bool
    ) -> Tensor:
        inner = self.alpha - self.margin
        sum_p, sum_n = w_pos.sum(dim=1), w_neg.sum(dim=1)  # (B,) Σ_{P*_i} w, Σ_{N*_i} w
        share = sum_p + sum_n  # (B,) S_i
        share = share / share.sum().clamp(min=torch.finfo(share.dtype).tiny)  # (B,) S_i / S
        one = torch.ones_like(sum_p)
        coef_p = share * (1.0 - self.imbalance) / torch.where(sum_p > 0, sum_p, one)  # (B,)
        coef_n = share * self.imbalance / torch.where(sum_n > 0, sum_n, one)  # (B,)
        c_pos = w_pos * coef_p.unsqueeze(1)  # (B, B) constant coefficient of each positive hinge
        c_neg = w_neg * coef_n.unsqueeze(1)  # (B, B)
        if details:  # the per-pair gradient |∂L/∂d_ij| is what details() reports: use the shared pair grid
            d = pairs.matrix  # (B, B)
        else:  # each query's own end only
            d = query_side_distances(pairs.embeddings, pos_star | neg_star)  # (B, B)
        return (c_pos * (d - inner)).sum() + (c_neg * (self.alpha - d)).sum()

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, Tn={self.Tn}, imbalance={self.imbalance}, alpha={self.alpha}, Tp={self.Tp}, "
            f"variant={self.variant!r}"
        )

"""Ranked List Loss (Wang, Hua, Kodirov & Robertson, *Ranked List Loss for Deep Metric Learning*, TPAMI; CVPR 2019)."""
from __future__ import annotations

import torch

from .._checks import check_fraction, check_positive, check_real
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs


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

    Args:
        margin: m, the gap between the positive and negative boundaries.
        Tn: temperature of the negative weights.
        imbalance: λ, the weight of the negative part.
        alpha: α, the negative boundary (None: ``1 + margin/2``).
        Tp: temperature of the positive weights.
    """

    method = "ranked_list"
    eps = 1e-5

    def __init__(
        self, margin: float = 0.4, Tn: float = 10.0, imbalance: float = 0.5, alpha: float | None = None, Tp: float = 0.0
    ) -> None:
        super().__init__()
        self.margin = check_positive(margin, "margin", allow_zero=True)
        self.Tn = check_real(Tn, "Tn")
        self.Tp = check_real(Tp, "Tp")
        self.imbalance = check_fraction(imbalance, "imbalance")
        self.alpha = 1.0 + self.margin / 2.0 if alpha is None else check_real(alpha, "alpha")

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        d = pairs.matrix  # (B, B)
        inner = self.alpha - self.margin  # the positive boundary α − m
        pos_star = pairs.positive & (d > inner)  # (B, B) P*
        neg_star = pairs.negative & (d < self.alpha) & (d > 0)  # (B, B) N*
        ninf = torch.full_like(d, float("-inf"))
        w_pos = torch.exp(torch.where(pos_star, self.Tp * (d - inner), ninf))  # (B, B)
        w_neg = torch.exp(torch.where(neg_star, self.Tn * (self.alpha - d), ninf))  # (B, B)
        pad = self.eps * d.shape[1]
        loss_p = (w_pos * (d - inner)).sum(dim=1) / (w_pos.sum(dim=1) + pad)  # (B,)
        loss_n = (w_neg * (self.alpha - d)).sum(dim=1) / (w_neg.sum(dim=1) + pad)  # (B,)
        loss = ((1.0 - self.imbalance) * loss_p + self.imbalance * loss_n).mean()
        if not details:
            return LossResult(loss)
        candidates = int(pairs.positive.sum() + pairs.negative.sum())
        trivial = candidates - int(pos_star.sum() + neg_star.sum())
        weights = PairWeights(self.method, w_pos.detach(), w_neg.detach(), trivial, candidates, "pair")
        return LossResult(loss, weights)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, Tn={self.Tn}, imbalance={self.imbalance}, alpha={self.alpha}, Tp={self.Tp}"

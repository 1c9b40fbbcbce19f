"""Angular loss (Wang, Zhou, Wen, Liu & Lin, *Deep Metric Learning with Angular Loss*, ICCV 2017), in PML's form."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_positive
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, zero_loss
from .multi_similarity import log1p_sum_exp

__all__ = ["AngularLoss"]


class AngularLoss(MetricLoss):
    """``ℓ_ap = log(1 + Σ_{n∈N(a)} e^{f_apn})``, ``f_apn = 4 tan²α (x̂_a + x̂_p)ᵀ x_n − 2 (1 + tan²α) x̂_aᵀ x̂_p``,
    ``L = mean_{(a,p)∈P} ℓ_ap``.

    The smooth (log-sum-exp) form of the angle constraint ``||x_a − x_p|| ≤ 2 tan α ||x_n − x_c||`` with
    ``x_c = (x_a + x_p)/2`` (Wang et al., ICCV 2017, over the batch): the negative is pushed away from
    the centre of the pair, and the angle at the negative kept below α. Over every ordered positive pair and every
    sample of another class; equal to PML 2.9's ``AngularLoss()`` (``alpha=40``), including its convention that the
    anchor and positive are L2-normalised but **the negative is not** (PML multiplies by the raw reference
    embeddings): ``(x̂_a + x̂_p)ᵀ x_n = ||x_n|| (s_an + s_pn)`` with the cosine similarities ``s``, so the norm of
    each negative scales its logits. For normalised input that is the paper's loss.

    The logits form a (|P|, B) tensor — one row per positive pair — never a B×B×B one.

    Per-pair weights in :meth:`details`: on a negative pair ``(a, n)`` the softmax weight of ``n`` summed over the
    anchor's positive pairs, ``Σ_p e^{f_apn} / (1 + Σ_m e^{f_apm})``; on a positive pair the total weight of its
    negatives. ``num_trivial`` counts the positive pairs for which every negative already satisfies the angle
    constraint (on the unit sphere, ``4t²(s_an + s_pn) − 2(1 + t²)s_ap ≤ 6t² − 2``); softmax losses never drop a
    pair, so these still carry a small gradient.

    Args (keyword-only):
        alpha: α, the angle bound in degrees, in (0, 90).
    """

    matrix_kind = "similarity"
    method = "angular"

    def __init__(self, *, alpha: float = 40.0) -> None:
        super().__init__()
        self.alpha = check_positive(alpha, "alpha")
        if not self.alpha < 90.0:
            raise ValueError(f"alpha must be an angle in degrees in (0, 90); got {self.alpha}")
        self.sq_tan = math.tan(math.radians(self.alpha)) ** 2  # tan²α

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        s = pairs.matrix  # (B, B)
        anchor, positive = pairs.positive.nonzero(as_tuple=True)  # (P,) each, the ordered positive pairs
        keep = pairs.negative[anchor]  # (P, B) the negatives of each pair's anchor
        if anchor.numel() == 0 or not bool(keep.any()):
            loss, logits = zero_loss(s), s.new_zeros(anchor.numel(), s.shape[1])
        else:
            norms = pairs.embeddings.norm(dim=1)  # (B,) ||x_n||, PML's un-normalised negatives
            centre = (s[anchor] + s[positive]) * norms.unsqueeze(0)  # (P, B) (x̂_a + x̂_p)ᵀ x_n
            s_ap = s[anchor, positive].unsqueeze(1)  # (P, 1)
            logits = 4.0 * self.sq_tan * centre - 2.0 * (1.0 + self.sq_tan) * s_ap  # (P, B) f_apn
            loss = log1p_sum_exp(logits, keep).mean()
        if not details:
            return LossResult(loss)
        return LossResult(loss, self._weights(s.detach(), logits.detach(), keep, anchor, positive))

    def _weights(
        self, s: Tensor, logits: Tensor, keep: Tensor, anchor: Tensor, positive: Tensor
    ) -> PairWeights:
        w_pos, w_neg = torch.zeros_like(s), torch.zeros_like(s)  # (B, B) each
        satisfied = int(anchor.numel())
        if anchor.numel() > 0 and bool(keep.any()):
            prob = torch.exp(logits - log1p_sum_exp(logits, keep).unsqueeze(1)) * keep  # (P, B)
            w_neg.index_add_(0, anchor, prob)
            w_pos[anchor, positive] = prob.sum(dim=1)
            t2 = self.sq_tan
            s_ap = s[anchor, positive].unsqueeze(1)  # (P, 1)
            unit = 4.0 * t2 * (s[anchor] + s[positive]) - 2.0 * (1.0 + t2) * s_ap  # (P, B) on the unit sphere
            violated = (unit > 6.0 * t2 - 2.0) & keep  # (P, B) the angle at n exceeds α
            satisfied = int((~violated.any(dim=1)).sum())
        return PairWeights(self.method, w_pos, w_neg, satisfied, int(anchor.numel()), "pair")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

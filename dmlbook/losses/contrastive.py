"""Contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006), in PML's form."""

from __future__ import annotations

import torch

from ..distances import as_float
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, check_margin, count


class ContrastiveLoss(MetricLoss):
    """``L = mean_{P, ℓ>0} [d_ij − m⁺]₊ + mean_{N, ℓ>0} [m⁻ − d_ij]₊``.

    Over ordered pairs of L2-normalised embeddings, each half averaged over its non-zero terms (PML's
    ``AvgNonZeroReducer``); a half with no non-zero term contributes 0. Equal to PML 2.9's
    ``ContrastiveLoss()`` at the defaults. Distances are not squared.

    Args (keyword-only):
        pos_margin: m⁺ ≥ 0, positives closer than this cost nothing.
        neg_margin: m⁻ ≥ m⁺, negatives farther than this cost nothing.

    Distances are never negative, so a negative margin is refused (a negative m⁺ would make every positive pair
    count, however close; a negative m⁻ would switch the negative term off). ``m⁺ > m⁻`` asks positives to sit
    farther apart than negatives and is refused too; ``m⁺ = m⁻`` (one threshold for both sides) is degenerate
    but allowed, as in PML.
    """

    method = "none"
    symmetric_pair_gradient = True  # c_ij = c_ji: both orders of a pair are treated alike

    def __init__(self, *, pos_margin: float = 0.0, neg_margin: float = 1.0) -> None:
        super().__init__()
        self.pos_margin = check_margin(pos_margin, "pos_margin")
        self.neg_margin = check_margin(neg_margin, "neg_margin")
        if self.pos_margin > self.neg_margin:
            raise ValueError(
                f"pos_margin ({self.pos_margin}) must not exceed neg_margin ({self.neg_margin}): positives would "
                "be allowed to sit farther apart than negatives must be"
            )

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        # With the active pairs fixed the loss is linear in d: L = Σ c_ij d_ij + const, c = ±1/(active count).
        # Masks are 0/1 floats throughout: bool tensors take slow paths on a CPU.
        d = pairs.matrix  # (B, B)
        with torch.no_grad():
            pos_active = torch.gt(d, self.pos_margin, out=torch.empty_like(d))  # (B, B) [d − m⁺]₊ > 0
            pos_active.mul_(as_float(pairs.positive, d.dtype))
            neg_active = torch.lt(d, self.neg_margin, out=torch.empty_like(d))  # (B, B) [m⁻ − d]₊ > 0
            neg_active.mul_(as_float(pairs.negative, d.dtype))
            n_pos, n_neg = count(pos_active), count(neg_active)
            coef = torch.div(pos_active, n_pos.clamp(min=1))  # (B, B)
            coef.addcdiv_(neg_active, n_neg.clamp(min=1), value=-1.0)
            const = self.neg_margin * (n_neg > 0).to(d.dtype) - self.pos_margin * (n_pos > 0).to(d.dtype)
        loss = torch.dot(coef.flatten(), d.flatten()) + const
        if not details:
            return LossResult(loss)
        candidates = int(pairs.positive.sum() + pairs.negative.sum())
        trivial = candidates - int(n_pos + n_neg)
        return LossResult(loss, PairWeights(self.method, pos_active, neg_active, trivial, candidates, "pair"))

    def extra_repr(self) -> str:
        return f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}"

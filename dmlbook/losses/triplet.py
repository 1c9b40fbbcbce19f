"""Triplet margin loss (Weinberger & Saul 2009; Schroff et al., FaceNet 2015; Hermans et al. 2017), in PML's form."""

from __future__ import annotations

import torch

from .._checks import check_choice
from ..mining import PairWeights, hardest_triplets, triplet_counts
from .base import LossResult, MetricLoss, Pairs, check_margin, mean_of_nonzero, zero_loss

TRIPLET_MINING = ("all", "batch_hard", "semi_hard")
TRIPLET_REDUCTIONS = ("nonzero", "mean")


class TripletMarginLoss(MetricLoss):
    """``L = mean_{(a,p,n) mined, ℓ>0} [d_ap − d_an + m]₊`` on L2-normalised embeddings.

    Mining:

    * ``"all"``: every triplet (a, p, n) of the batch — PML's ``TripletMarginLoss(margin)`` without a miner;
    * ``"batch_hard"``: per anchor the farthest positive and the closest negative — with PML's ``BatchHardMiner()``;
    * ``"semi_hard"``: triplets with ``d_ap < d_an ≤ d_ap + m`` — with PML's
      ``TripletMarginMiner(margin, type_of_triplets="semihard")``.

    Reduction:

    * ``"nonzero"`` (default): the mean over the triplets with a non-zero loss (PML's ``AvgNonZeroReducer``,
      its default for this loss);
    * ``"mean"``: the mean over every mined triplet, the zero-loss ones included (PML's ``MeanReducer``):
      ``L = 1/T Σ_{(a,p,n) mined} [d_ap − d_an + m]₊`` with T the number of mined triplets — every triplet of the
      batch for ``"all"`` (the plain triplet loss of Weinberger & Saul and Schroff et al., whose easy triplets
      dilute the gradient, the effect that motivated mining), one per anchor for ``"batch_hard"``. The
      semi-hard triplets all have a positive loss but for exact ties ``d_an = d_ap + m``, so for
      ``"semi_hard"`` both reductions divide by the number of active semi-hard triplets.

    ``"all"`` and ``"semi_hard"`` never form the B×B×B triplet tensor:
    ``Σ_active (d_ap − d_an + m) = Σ_{a,p} c_ap d_ap − Σ_{a,n} c_an d_an + m·C`` with ``c`` the number of active
    triplets that use each pair (counted by sorting, :func:`dmlbook.mining.triplet_counts`) and ``C`` the number
    of active triplets; the counts are piecewise constant, so the gradient is exact too.

    Args (keyword-only):
        margin: m ≥ 0.
        mining: ``"all"``, ``"batch_hard"`` or ``"semi_hard"``.
        reduction: ``"nonzero"`` or ``"mean"``.
    """

    def __init__(self, *, margin: float = 0.05, mining: str = "all", reduction: str = "nonzero") -> None:
        super().__init__()
        why = "a negative margin accepts a negative that is closer to the anchor than the positive"
        self.margin = check_margin(margin, "margin", why=why)
        self.mining = check_choice(mining, TRIPLET_MINING, "mining")
        self.reduction = check_choice(reduction, TRIPLET_REDUCTIONS, "reduction")
        self.method = "none" if mining == "all" else mining

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        if self.mining == "batch_hard":
            return self._batch_hard(pairs, details)
        d = pairs.matrix  # (B, B)
        per_pos, per_neg, num_triplets = triplet_counts(
            d, pairs.positive, pairs.negative, self.margin, semi_hard=self.mining == "semi_hard"
        )
        active = per_pos.sum()  # C, the number of active triplets
        if int(active) == 0:
            loss = zero_loss(d)
        else:
            # the mean over all triplets divides the same sum by T instead of C ("semi_hard": mined = active)
            over_all = self.reduction == "mean" and self.mining == "all"
            denominator = num_triplets if over_all else active
            coef = (per_pos - per_neg).to(d.dtype) / denominator  # (B, B) ∂L/∂d_ij
            loss = (coef * d).sum() + (self.margin * int(active) / num_triplets if over_all else self.margin)
        if not details:
            return LossResult(loss)
        trivial = num_triplets - int(active)
        weights = PairWeights(
            self.method, per_pos.to(d.dtype), per_neg.to(d.dtype), trivial, num_triplets, "triplet"
        )
        return LossResult(loss, weights)

    def _batch_hard(self, pairs: Pairs, details: bool) -> LossResult:
        d = pairs.matrix  # (B, B)
        anchor, pos, neg = hardest_triplets(d, pairs.positive, pairs.negative)  # (A,) each
        if anchor.numel() == 0:
            loss, hinge = zero_loss(d), d.new_zeros(0)
        else:
            hinge = (d[anchor, pos] - d[anchor, neg] + self.margin).relu()  # (A,)
            loss = mean_of_nonzero(hinge) if self.reduction == "nonzero" else hinge.mean()
        if not details:
            return LossResult(loss)
        active = (hinge > 0).to(d.dtype).detach()  # (A,)
        w_pos, w_neg = torch.zeros_like(d), torch.zeros_like(d)
        w_pos[anchor, pos] = active
        w_neg[anchor, neg] = active
        trivial = int(anchor.numel() - active.sum())
        return LossResult(
            loss, PairWeights("batch_hard", w_pos, w_neg, trivial, int(anchor.numel()), "triplet")
        )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}, reduction={self.reduction!r}"

"""Lifted structured loss (Oh Song, Xiang, Jegelka & Savarese, CVPR 2016), in PML's form."""

from __future__ import annotations

import torch

from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, check_margin, zero_loss


class LiftedStructureLoss(MetricLoss):
    """``J_ij = log( Σ_{n∈N(i)} e^{m⁻ − d_in} + Σ_{n∈N(j)} e^{m⁻ − d_jn} ) + d_ij − m⁺``, ``L = mean_P [J_ij]₊² / 2``.

    Over ordered positive pairs, which equals the paper's ``1/(2|P̂|) Σ_{unordered} [J]₊²``; margins apply to
    non-squared distances. Equal to PML 2.9's ``LiftedStructureLoss()``. The negative sum of a pair is
    ``logaddexp`` of two per-anchor log-sum-exps, so no pair × negative tensor is formed.

    Per-pair weights in :meth:`details`: ``[J_ij]₊`` on positive pairs (how hard the pair is) and, on negative
    pairs, the gradient share ``|∂L/∂d|``.

    Args (keyword-only):
        neg_margin: m⁻ ≥ 0.
        pos_margin: m⁺ ≥ 0.
    """

    def __init__(self, *, neg_margin: float = 1.0, pos_margin: float = 0.0) -> None:
        super().__init__()
        self.neg_margin = check_margin(neg_margin, "neg_margin")
        self.pos_margin = check_margin(pos_margin, "pos_margin")

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        d = pairs.matrix  # (B, B)
        pos, neg = pairs.positive, pairs.negative
        num_pos = int(pos.sum())
        if num_pos == 0 or not bool(neg.any()):
            loss, hinge = zero_loss(d), torch.zeros_like(d)
        else:
            neg_logits = torch.where(neg, self.neg_margin - d, torch.full_like(d, float("-inf")))  # (B, B)
            per_anchor = torch.logsumexp(neg_logits, dim=1)  # (B,) log Σ_{n∈N(i)} e^{m⁻−d_in}
            joint = torch.logaddexp(per_anchor.unsqueeze(1), per_anchor.unsqueeze(0))  # (B, B)
            hinge = torch.where(pos, (joint + d - self.pos_margin).relu(), torch.zeros_like(d))  # (B, B)
            loss = (hinge * hinge).sum() / (2.0 * num_pos)
        if not details:
            return LossResult(loss)
        w_pos = hinge.detach()
        if loss.requires_grad:
            (grad,) = torch.autograd.grad(loss, d, retain_graph=True)
            w_neg = grad.abs() * neg
        else:
            w_neg = torch.zeros_like(d)
        trivial = num_pos - int((w_pos > 0).sum())
        return LossResult(loss, PairWeights("lifted", w_pos, w_neg, trivial, num_pos, "pair"))

    def extra_repr(self) -> str:
        return f"neg_margin={self.neg_margin}, pos_margin={self.pos_margin}"

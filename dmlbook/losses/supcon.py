"""Supervised contrastive loss (Khosla, Teterwak, Wang, Sarna, Tian, Isola, Maschinot, Liu & Krishnan,
*Supervised Contrastive Learning*, NeurIPS 2020), in PML's form."""

from __future__ import annotations

import torch

from .._checks import check_positive
from ..distances import as_float
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, count, known_gradient, zero_loss

__all__ = ["SupConLoss"]


class SupConLoss(MetricLoss):
    """Each sample is an anchor whose positives should take the softmax mass of its row::

        ℓ_i = −1/|P(i)| Σ_{p∈P(i)} log( e^{s_ip / τ} / Σ_{a≠i} e^{s_ia / τ} ),   L = mean_{i: ℓ_i > 0} ℓ_i

    with ``s`` the cosine similarity of the L2-normalised embeddings, ``P(i)`` the other samples of i's class and
    the sum ``a ≠ i`` over the rest of the batch (the paper's L_out). Anchors without a positive give 0 and, as
    in PML's ``AvgNonZeroReducer``, the mean runs over the non-zero ``ℓ_i``; a batch without a positive or
    without a negative pair gives 0. Equal to PML 2.9's ``SupConLoss(temperature=τ)``.

    Gradient, in closed form (one B×B pass): ``∂ℓ_i/∂s_ij = (p_ij − [j∈P(i)]/|P(i)|) / τ`` with ``p_ij`` the
    softmax of row i. :meth:`details` weights, per pair of row i: ``1/|P(i)| − p_ij`` on a positive (its net pull,
    negative when it already holds more than its share of the row) and ``p_ij`` on a negative (the push);
    ``num_trivial`` counts the anchors that contribute nothing (no positive, or ℓ_i = 0), unit ``"anchor"``.

    Args:
        temperature: τ > 0.
    """

    method = "supcon"
    matrix_kind = "similarity"

    def __init__(self, *, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature")

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        s = pairs.matrix  # (B, B)
        b = s.shape[0]
        with torch.no_grad():
            pos = as_float(pairs.positive, s.dtype)  # (B, B)
            n_pos = pos.sum(dim=1)  # (B,)
            has_negative = bool(pairs.negative.any())
            z = s / self.temperature  # (B, B)
            z.diagonal().fill_(float("-inf"))  # the anchor itself is not in its row
            shift = z.amax(dim=1)  # (B,) max over the rest of the row: the log-sum-exp's shift
            e = z.sub_(shift.unsqueeze(1)).exp_()  # (B, B) e^{z − shift}, 0 on the diagonal
            log_den = e.sum(dim=1).log_().add_(shift)  # (B,) log Σ_{a≠i} e^{z_ia}
            denom = n_pos + torch.finfo(s.dtype).tiny  # (B,) as PML
            # ℓ_i = −Σ_p (z_ip − log Σ_a e^{z_ia}) / |P(i)|
            per_anchor = (n_pos * log_den - (pos * s).sum(dim=1) / self.temperature) / denom  # (B,)
            active = (per_anchor > 0).to(s.dtype) if has_negative else torch.zeros_like(per_anchor)  # (B,)
            n_active = count(active)
            value = (per_anchor * active).sum() / n_active.clamp(min=1)
            prob = e.div_(e.sum(dim=1, keepdim=True))  # (B, B) p_ij, 0 on the diagonal
            # ∂L/∂s_ij = active_i / (N τ) · (p_ij |P(i)| / denom_i − [j∈P(i)] / denom_i)
            row = active / (n_active.clamp(min=1) * self.temperature * denom)  # (B,)
            grad = (prob * n_pos.unsqueeze(1) - pos).mul_(row.unsqueeze(1))  # (B, B)
        loss = known_gradient(value, s, grad) if bool(n_active > 0) else zero_loss(s)
        if not details:
            return LossResult(loss)
        positive = (1.0 / n_pos.clamp(min=1)).unsqueeze(1) * pos - prob * pos  # (B, B)
        negative = prob * as_float(pairs.negative, s.dtype)  # (B, B)
        weights = PairWeights(self.method, positive, negative, b - int(n_active), b, "anchor")
        return LossResult(loss, weights)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

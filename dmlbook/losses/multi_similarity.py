"""Multi-similarity loss (Wang, Han, Huang, Dong & Scott, CVPR 2019), in PML's form."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_positive, check_real
from ..mining import PairWeights, multi_similarity_mask
from .base import LossResult, MetricLoss, Pairs, zero_loss


def log1p_sum_exp(z: Tensor, mask: Tensor) -> Tensor:
    """Row-wise ``log(1 + Σ_{j: mask_ij} exp z_ij)``, stable; rows with no entry give 0. (B, B) → (B,)."""
    z = torch.where(mask, z, torch.full_like(z, float("-inf")))  # (B, B)
    shift = (
        z.detach().max(dim=1, keepdim=True).values.clamp(min=0.0)
    )  # (B, 1) the shift cancels in the gradient
    total = torch.exp(z - shift).sum(dim=1, keepdim=True) + torch.exp(-shift)  # (B, 1)
    return (shift + total.log()).squeeze(1)  # (B,)


class MultiSimilarityLoss(MetricLoss):
    """``L = 1/B Σ_i [ 1/α log(1 + Σ_{p∈P_i} e^{−α(s_ip − λ)}) + 1/β log(1 + Σ_{n∈N_i} e^{β(s_in − λ)}) ]``.

    ``s`` is the cosine similarity, ``λ`` = ``base``. With ``mining_epsilon=ε`` the pairs are first mined as in the
    paper (:func:`dmlbook.mining.multi_similarity_mask`; PML's ``MultiSimilarityMiner(epsilon)``, whose default is
    0.1). Equal to PML 2.9's ``MultiSimilarityLoss()`` (with or without the miner), including its quirk that a batch
    whose miner keeps at most one positive and at most one negative pair gives 0.

    The per-pair weights in :meth:`details` are the paper's soft weights ``∂L_i/∂s_ij``:
    ``w⁺_ip = e^{−α(s_ip−λ)} / (1 + Σ_k e^{−α(s_ik−λ)})`` and ``w⁻_in = e^{β(s_in−λ)} / (1 + Σ_k e^{β(s_ik−λ)})``.

    Args (keyword-only):
        alpha: α, the positive scale.
        beta: β, the negative scale.
        base: λ, the similarity margin.
        mining_epsilon: ε of the multi-similarity miner, or None for no mining.
    """

    matrix_kind = "similarity"

    def __init__(
        self,
        *,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        mining_epsilon: float | None = None,
    ) -> None:
        super().__init__()
        self.alpha = check_positive(alpha, "alpha")
        self.beta = check_positive(beta, "beta")
        self.base = check_real(base, "base")
        self.mining_epsilon = None if mining_epsilon is None else check_real(mining_epsilon, "mining_epsilon")
        self.method = "none" if mining_epsilon is None else "multi_similarity"

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        s = pairs.matrix  # (B, B)
        pos, neg = pairs.positive, pairs.negative
        if self.mining_epsilon is not None:
            pos, neg = multi_similarity_mask(s, pos, neg, self.mining_epsilon)
        z_pos = -self.alpha * (s - self.base)  # (B, B)
        z_neg = self.beta * (s - self.base)  # (B, B)
        pos_term = log1p_sum_exp(z_pos, pos)  # (B,) α · (positive part)
        neg_term = log1p_sum_exp(z_neg, neg)  # (B,) β · (negative part)
        if self.mining_epsilon is not None and int(pos.sum()) <= 1 and int(neg.sum()) <= 1:
            loss = zero_loss(s)  # PML's GenericPairLoss returns 0 when every index tuple has length <= 1
        else:
            loss = (pos_term / self.alpha + neg_term / self.beta).mean()
        if not details:
            return LossResult(loss)
        with torch.no_grad():
            w_pos = torch.exp(z_pos - pos_term.unsqueeze(1)) * pos  # (B, B)
            w_neg = torch.exp(z_neg - neg_term.unsqueeze(1)) * neg  # (B, B)
        candidates = int(pairs.positive.sum() + pairs.negative.sum())
        trivial = candidates - int(pos.sum() + neg.sum())
        return LossResult(loss, PairWeights(self.method, w_pos, w_neg, trivial, candidates, "pair"))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, base={self.base}, mining_epsilon={self.mining_epsilon}"

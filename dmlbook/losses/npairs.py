"""N-pair loss (Sohn, *Improved Deep Metric Learning with Multi-class N-pair Loss Objective*, NeurIPS 2016), in PML's
form."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, zero_loss
from .multi_similarity import log1p_sum_exp

NPAIRS_NEGATIVES = ("pairs", "all")

__all__ = ["NPAIRS_NEGATIVES", "NPairsLoss", "first_pairs", "npairs_cross_entropy"]


@torch.no_grad()
def first_pairs(positive: Tensor) -> tuple[Tensor, Tensor]:
    """One positive pair per class: its first sample in the batch and the next one.

    This is PML's ``convert_to_pos_pairs_with_unique_labels`` on the full pair list: classes with a single sample
    give no pair, samples after the second are not used.

    Args:
        positive: (B, B) bool positive-pair mask (same label, ``i ≠ j``).

    Returns:
        ``(anchor, positive)`` index tensors, each (K,), in batch order of the anchors.
    """
    earlier = torch.tril(positive, diagonal=-1).any(dim=1)  # (B,) an earlier sample has the same label
    anchor = (positive.any(dim=1) & ~earlier).nonzero().squeeze(1)  # (K,) the first sample of each class
    partner = (
        positive[anchor].to(torch.uint8).argmax(dim=1)
    )  # (K,) its first positive: the class's second sample
    return anchor, partner


def npairs_cross_entropy(logits: Tensor) -> Tensor:
    """``1/K Σ_c −log softmax(logits_c)_c``: the N-pair cross-entropy of a (K, K) logit matrix with the positives on
    the diagonal (row c: anchor c against the positive of every pair). (K, K) → scalar."""
    target = torch.arange(logits.shape[0], device=logits.device)  # (K,)
    return F.cross_entropy(logits, target)


class NPairsLoss(MetricLoss):
    """``L = 1/K Σ_c −log( e^{s(a_c, p_c)} / Σ_k e^{s(a_c, p_k)} ) = 1/K Σ_c log(1 + Σ_{k≠c} e^{s(a_c, p_k) − s(a_c, p_c)})``.

    One pair ``(a_c, p_c)`` per class — its first two samples in the batch (:func:`first_pairs`; classes with one
    sample take no part) — and the positives of the other pairs as the negatives of each anchor (Sohn, NeurIPS
    2016, with the efficient N-pair batch). ``s`` is the cosine similarity of the L2-normalised embeddings
    and the mean runs over the K pairs. Equal to PML 2.9's ``NPairsLoss()`` (whose ``DotProductSimilarity``
    normalises by default); like it, no L2 regulariser on the raw embeddings (TensorFlow's
    ``npairs_loss(reg_lambda=0.002)``, used by the Symm code, adds ``λ/4 (mean ||a||² + mean ||p||²)`` because it
    does not normalise).

    ``negatives="all"`` instead takes every negative pair of the anchor's row of the pair grid,
    ``L = 1/K Σ_c log(1 + Σ_{n∈N(a_c)} e^{s(a_c, n) − s(a_c, p_c)})``: every sample of another class in a plain
    batch, or the negatives a miner kept (this is how :class:`dmlbook.synthesis.SymmetricalSynthesis` feeds its
    mined negatives in). ``compute(..., negatives=...)`` overrides the setting for one call.

    Per-pair weights in :meth:`details` are the soft weights ``∂L_c/∂s``: the softmax probability of each
    negative, and ``1 − p(positive)`` on the positive pair. Softmax losses never drop a pair; ``num_trivial``
    counts the satisfied anchors, whose positive already outranks every negative.

    Args (keyword-only):
        negatives: ``"pairs"`` (the other pairs' positives, PML) or ``"all"`` (the anchor's negative pairs).
    """

    matrix_kind = "similarity"
    method = "npairs"

    def __init__(self, *, negatives: str = "pairs") -> None:
        super().__init__()
        self.negatives = check_choice(negatives, NPAIRS_NEGATIVES, "negatives")

    def compute(self, pairs: Pairs, *, details: bool, negatives: str | None = None) -> LossResult:
        negatives = (
            self.negatives if negatives is None else check_choice(negatives, NPAIRS_NEGATIVES, "negatives")
        )
        s = pairs.matrix  # (B, B)
        anchor, positive = first_pairs(pairs.positive)  # (K,) each
        if negatives == "pairs":
            scores = s[anchor][:, positive]  # (K, K) row c: s(a_c, p_k); the positive on the diagonal
            keep = ~torch.eye(anchor.numel(), dtype=torch.bool, device=s.device)  # (K, K) off-diagonal
        else:
            scores = s[anchor]  # (K, B) row c: s(a_c, n) for every column n
            keep = pairs.negative[anchor]  # (K, B)
        if anchor.numel() == 0:
            loss = zero_loss(s)
            z = scores
        elif negatives == "pairs":
            loss = npairs_cross_entropy(scores)
            z = scores - scores.diagonal().unsqueeze(1)  # (K, K) s(a_c, p_k) − s(a_c, p_c)
        else:
            z = scores - s[anchor, positive].unsqueeze(1)  # (K, B) s(a_c, n) − s(a_c, p_c)
            loss = log1p_sum_exp(z, keep).mean()
        if not details:
            return LossResult(loss)
        return LossResult(loss, self._weights(z.detach(), keep, anchor, positive, pairs, negatives))

    def _weights(
        self, z: Tensor, keep: Tensor, anchor: Tensor, positive: Tensor, pairs: Pairs, negatives: str
    ) -> PairWeights:
        w_pos, w_neg = torch.zeros_like(pairs.matrix), torch.zeros_like(pairs.matrix)  # (B, B) each
        satisfied = 0
        if anchor.numel() > 0:
            norm = log1p_sum_exp(z, keep)  # (K,) log(1 + Σ e^z)
            prob = torch.exp(z - norm.unsqueeze(1)) * keep  # (K, ·) softmax probability of each negative
            columns = positive if negatives == "pairs" else torch.arange(z.shape[1], device=z.device)  # (·,)
            w_neg[anchor.unsqueeze(1), columns.unsqueeze(0)] = prob
            w_pos[anchor, positive] = prob.sum(dim=1)  # 1 − p(positive)
            masked = torch.where(keep, z, torch.full_like(z, float("-inf")))  # (K, ·)
            satisfied = int((masked.max(dim=1).values < 0).sum())
        return PairWeights(self.method, w_pos, w_neg, satisfied, int(anchor.numel()), "pair")

    def extra_repr(self) -> str:
        return f"negatives={self.negatives!r}"

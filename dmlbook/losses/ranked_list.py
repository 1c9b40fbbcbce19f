"""Ranked List Loss (Wang, Hua, Kodirov & Robertson, *Ranked List Loss for Deep Metric Learning*, TPAMI; CVPR 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_choice, check_fraction, check_positive, check_real
from ..distances import l2_normalize, pairwise_distances, same_label
from ..mining import PairWeights
from .base import LossResult, MetricLoss, Pairs, check_loss_input, known_gradient

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
    so that this equals PML 2.9's ``RankedListLoss(margin, Tn)``. Its gradient ``∂L/∂d`` has a closed form (the
    weights' own derivative included, see ``_paper``), which the backward pass applies in one B×B pass instead of
    autograd's chain through the masks, exponentials and ratios.

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
        *,
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

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:  # type: ignore[override]
        if self.variant == "official":
            return super().forward(embeddings, labels)
        embeddings, labels = check_loss_input(embeddings, labels)
        d = pairwise_distances(embeddings)  # (B, B)
        with torch.no_grad():
            loss, grad, _, _ = self._paper(d, same_label(labels, d.dtype))
        return known_gradient(loss, d, grad)

    def compute(self, pairs: Pairs, *, details: bool) -> LossResult:
        d = pairs.matrix  # (B, B)
        inner = self.alpha - self.margin  # the positive boundary α − m
        pos_star = pairs.positive & (d > inner)  # (B, B) P*
        neg_star = pairs.negative & (d < self.alpha) & (d > 0)  # (B, B) N*
        if self.variant == "official":
            ninf = torch.full_like(d, float("-inf"))
            with torch.no_grad():  # constants in this variant
                w_pos = torch.exp(torch.where(pos_star, self.Tp * (d - inner), ninf))  # (B, B)
                w_neg = torch.exp(torch.where(neg_star, self.Tn * (self.alpha - d), ninf))  # (B, B)
            loss = self._official(pairs, w_pos, w_neg, pos_star, neg_star, details)
        else:
            with torch.no_grad():
                value, grad, w_pos, w_neg = self._paper(d, same_label(pairs.labels, d.dtype))
            loss = known_gradient(value, d, grad)
        if not details:
            return LossResult(loss)
        candidates = int(pairs.positive.sum() + pairs.negative.sum())
        trivial = candidates - int(pos_star.sum() + neg_star.sum())
        weights = PairWeights(self.method, w_pos.detach(), w_neg.detach(), trivial, candidates, "pair")
        return LossResult(loss, weights)

    def _paper(self, d: Tensor, same: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Value, ``∂L/∂d`` (B, B) and the weights ``w⁺``, ``w⁻`` (B, B) of the paper variant, in closed form.

        ``same`` is the (B, B) 0/1 same-label matrix (diagonal included). With ``u = d − (α − m)``,
        ``v = α − d``, ``Z^±_i = Σ_j w^± + 1e-5·B`` and the query's terms ``L_P(i)``, ``L_N(i)``::

            ∂L/∂d_ij = 1/B [ (1 − λ) w⁺_ij/Z⁺_i (1 + T_p (u_ij − L_P(i))) − λ w⁻_ij/Z⁻_i (1 + T_n (v_ij − L_N(i))) ]

        (the weights' own derivative included, as autograd would give it). Masks are 0/1 floats: a CPU takes
        slow paths on bool tensors.
        """
        b = d.shape[0]
        inner = self.alpha - self.margin  # the positive boundary α − m
        pad = self.eps * b
        w_pos = torch.gt(d, inner, out=torch.empty_like(d)).mul_(same)  # (B, B) P*: positives beyond α − m
        w_pos.diagonal().zero_()
        w_neg = torch.lt(d, self.alpha, out=torch.empty_like(d))  # (B, B) d < α
        w_neg.addcmul_(w_neg, same, value=-1.0)  # (B, B) of another class: N* (with d > 0, below)
        w_neg.mul_(torch.gt(d, 0.0, out=torch.empty_like(d)))  # coincident points have no direction: left out
        v = torch.rsub(d, self.alpha)  # (B, B) α − d
        w_neg.mul_(torch.mul(v, self.Tn).exp_())  # (B, B) w⁻ = e^{T_n (α − d)} on N*
        if self.Tp != 0.0:
            w_pos.mul_(torch.sub(d, inner).mul_(self.Tp).exp_())  # (B, B) w⁺ = e^{T_p (d − (α − m))} on P*
        z_pos = w_pos.sum(dim=1).add_(pad)  # (B,) Z⁺
        z_neg = w_neg.sum(dim=1).add_(pad)  # (B,) Z⁻
        loss_p = (torch.linalg.vecdot(w_pos, d) - inner * (z_pos - pad)) / z_pos  # (B,) L_P
        loss_n = torch.linalg.vecdot(w_neg, v) / z_neg  # (B,) L_N
        lam = self.imbalance
        value = ((1.0 - lam) * loss_p + lam * loss_n).mean()
        # negatives: −λ/(B Z⁻) w⁻ (1 − T_n L_N + T_n v)
        c_neg = -lam / (b * z_neg)  # (B,)
        grad = torch.addcmul(
            (c_neg * (1.0 - self.Tn * loss_n)).unsqueeze(1), v, (c_neg * self.Tn).unsqueeze(1)
        )
        grad.mul_(w_neg)  # (B, B)
        # positives: (1 − λ)/(B Z⁺) w⁺ (1 − T_p L_P + T_p u), u = d − (α − m)
        c_pos = (1.0 - lam) / (b * z_pos)  # (B,)
        if self.Tp == 0.0:
            grad.addcmul_(w_pos, c_pos.unsqueeze(1))
        else:
            slope = torch.addcmul(
                (c_pos * (1.0 - self.Tp * (loss_p + inner))).unsqueeze(1), d, (c_pos * self.Tp).unsqueeze(1)
            )  # (B, B) c (1 − T_p L_P + T_p (d − inner))
            grad.addcmul_(w_pos, slope)
        return value, grad, w_pos, w_neg

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

"""Mining: which pairs and triplets of a batch count, and how much.

Each function takes the batch's distance (or similarity) matrix and the label masks from
:func:`dmlbook.distances.label_masks`, runs without gradient, and returns masks, counts or weights over the
(B, B) pair grid — the same grid a notebook draws as a heat map. The losses in :mod:`dmlbook.losses` are built on
these, and every loss reports what its mining did as a :class:`PairWeights` (``loss_fn.details(...)``).

Nothing here materialises a B×B×B tensor: triplet statistics are counted per pair with a sort and a binary search
(``O(B² log B)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .distances import as_float

__all__ = [
    "PairWeights",
    "hardest_triplets",
    "multi_similarity_mask",
    "osm_positive_weights",
    "osm_weights",
    "triplet_counts",
]


@dataclass(frozen=True)
class PairWeights:
    """What one mining method did to one batch.

    Attributes:
        method: the mining method (``"none"``, ``"batch_hard"``, ``"semi_hard"``, ``"multi_similarity"``,
            ``"osm"``, ``"osm_caa"``, ...).
        positive: (B, B) weight of each positive pair in the loss (0 off the positive pairs, and for pairs the
            method drops). Its meaning is the method's own: a 0/1 mask for hard mining, the number of active
            triplets that use the pair for triplet losses, the paper's soft weight for multi-similarity and OSM.
        negative: (B, B) the same for negative pairs.
        num_trivial: candidate tuples (``unit``: pairs or triplets) that contribute nothing to the loss —
            zero loss, or dropped by the miner.
        num_candidates: all candidate tuples of that kind in the batch.
        unit: ``"pair"``, ``"triplet"`` or ``"anchor"`` (batch-hard forms one triplet per anchor).
        attention: (B,) per-sample attention when the method has one (class-aware attention), else None.
    """

    method: str
    positive: Tensor
    negative: Tensor
    num_trivial: int
    num_candidates: int
    unit: str
    attention: Tensor | None = None

    @property
    def weights(self) -> Tensor:
        """(B, B) positive and negative weights on one grid."""
        return self.positive + self.negative

    @property
    def trivial_fraction(self) -> float:
        """Share of candidate tuples that contribute nothing (nan when there are none)."""
        return self.num_trivial / self.num_candidates if self.num_candidates else float("nan")


def _masked(values: Tensor, mask: Tensor, fill: float) -> Tensor:
    return torch.where(mask, values, torch.full_like(values, fill))


@torch.no_grad()
def hardest_triplets(dist: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-hard mining (Hermans et al., 2017): for each anchor its farthest positive and closest negative.

    Anchors without a positive or without a negative are dropped (as PML's ``BatchHardMiner``).

    Returns:
        ``(anchor, positive, negative)`` index tensors, each (A,).
    """
    far_pos = _masked(dist, positive, float("-inf")).max(dim=1)  # (B,) values and indices
    near_neg = _masked(dist, negative, float("inf")).min(dim=1)  # (B,)
    keep = positive.any(dim=1) & negative.any(dim=1)  # (B,)
    anchor = keep.nonzero().squeeze(1)  # (A,)
    return anchor, far_pos.indices[anchor], near_neg.indices[anchor]


def _hinge_active(d_ap: Tensor, d_an: Tensor, margin: float) -> Tensor:
    """``[d_ap − d_an + m]₊ > 0``, evaluated in exactly this order so that float32 ties resolve as in PML."""
    return (d_ap - d_an) + margin > 0


def _correct_prefix(sorted_rows: Tensor, guess: Tensor, inside) -> Tensor:
    """Length of the prefix of each sorted row on which ``inside(value)`` holds, from a binary-search ``guess``.

    ``guess`` comes from comparing against a rounded threshold; one element on either side of it is re-checked
    with the exact predicate, which is enough for the rounding of one addition.
    """
    last = sorted_rows.shape[1] - 1
    after = sorted_rows.gather(1, guess.clamp(max=last))  # (B, B) first value outside the guess
    before = sorted_rows.gather(1, (guess - 1).clamp(min=0))  # (B, B) last value inside the guess
    grow = (guess <= last) & inside(after)
    shrink = (guess > 0) & ~inside(before)
    return guess + grow.long() - shrink.long()


@torch.no_grad()
def triplet_counts(
    dist: Tensor, positive: Tensor, negative: Tensor, margin: float, *, semi_hard: bool = False
) -> tuple[Tensor, Tensor, int]:
    """How many active triplets ``(a, p, n)`` use each pair, without forming the triplets.

    A triplet is active when its hinge ``[d_ap − d_an + m]₊`` is positive; with ``semi_hard`` it must also have
    ``d_an > d_ap`` (Schroff et al., FaceNet 2015: negatives farther than the positive but inside the margin).
    For a fixed anchor–positive pair the active negatives are a prefix of the anchor's sorted negatives (and for a
    fixed anchor–negative pair the active positives a suffix of its sorted positives), so a sort and a binary
    search count them in ``O(B² log B)``.

    Returns:
        ``(per_positive, per_negative, num_triplets)``: (B, B) counts of active triplets per anchor–positive and per
        anchor–negative pair, and the number of candidate triplets ``Σ_a |P(a)|·|N(a)|``.
    """
    inf = float("inf")
    neg_sorted = _masked(dist, negative, inf).sort(dim=1).values  # (B, B) each anchor's negatives, ascending
    pos_sorted = _masked(dist, positive, inf).sort(dim=1).values  # (B, B) each anchor's positives, ascending
    n_pos = positive.sum(dim=1, keepdim=True)  # (B, 1)

    # per (a, p) = dist[a, p]: negatives n with an active hinge — a prefix of neg_sorted[a]
    guess = torch.searchsorted(neg_sorted, dist + margin, side="left")  # (B, B)
    per_pos = _correct_prefix(neg_sorted, guess, lambda d_an: _hinge_active(dist, d_an, margin))
    # per (a, n) = dist[a, n]: positives p with an active hinge — the complement of a prefix of pos_sorted[a]
    guess = torch.searchsorted(pos_sorted, dist - margin, side="right")  # (B, B)
    per_neg = n_pos - _correct_prefix(pos_sorted, guess, lambda d_ap: ~_hinge_active(d_ap, dist, margin))
    if (
        semi_hard
    ):  # drop the active triplets with d_an <= d_ap (both are prefixes/suffixes, so use the shorter)
        per_pos = per_pos - torch.minimum(per_pos, torch.searchsorted(neg_sorted, dist, side="right"))
        per_neg = per_neg - torch.minimum(per_neg, n_pos - torch.searchsorted(pos_sorted, dist, side="left"))

    per_pos = per_pos * positive  # (B, B)
    per_neg = per_neg * negative  # (B, B)
    num_triplets = int((n_pos.squeeze(1) * negative.sum(dim=1)).sum())
    return per_pos, per_neg, num_triplets


@torch.no_grad()
def multi_similarity_mask(
    sim: Tensor, positive: Tensor, negative: Tensor, epsilon: float
) -> tuple[Tensor, Tensor]:
    """Multi-similarity pair mining (Wang et al., CVPR 2019), as PML's ``MultiSimilarityMiner``.

    Keep a positive ``(i, p)`` if ``s_ip − ε < max_n s_in`` and a negative ``(i, n)`` if ``s_in + ε > min_p s_ip``;
    an anchor without negatives (or positives) keeps nothing.

    Returns:
        ``(positive_kept, negative_kept)``, (B, B) bool.
    """
    hardest_neg = _masked(sim, negative, float("-inf")).max(dim=1, keepdim=True).values  # (B, 1)
    hardest_pos = _masked(sim, positive, float("inf")).min(dim=1, keepdim=True).values  # (B, 1)
    return positive & (sim - epsilon < hardest_neg), negative & (sim + epsilon > hardest_pos)


def osm_positive_weights(dist: Tensor, *, sigma: float, kernel: str = "paper") -> Tensor:
    """OSM's positive kernel on any tensor of distances: ``exp(−d²/σ²)`` (``"paper"``) or ``exp(−d²/(2σ²))``
    (``"official"``). :func:`osm_weights` masks it to the positive pairs."""
    scale = sigma**2 if kernel == "paper" else 2.0 * sigma**2
    return torch.exp((dist * dist).mul_(-1.0 / scale))  # same shape as dist


def osm_weights(
    dist: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    sigma: float,
    margin: float,
    kernel: str = "paper",
) -> tuple[Tensor, Tensor]:
    """Online soft mining weights (Wang et al., AAAI 2019).

    * positives: ``s⁺_ij = exp(−d²/σ²)`` (``kernel="paper"``) or ``exp(−d²/(2σ²))`` (``"official"``, the Caffe
      code's Gaussian) — the *closer* a positive, the more it counts, which keeps intra-class variance;
    * negatives: ``s⁻_ij = [α − d_ij]₊`` — negatives beyond the margin get weight 0.

    Differentiable (unlike the other miners here): call it under ``torch.no_grad()`` to treat the weights as
    constants, as the official code does. The masks may be bool or 0/1 floats (faster).

    Returns:
        ``(w_pos, w_neg)``, (B, B), zero off their pair sets.
    """
    positive = positive if positive.is_floating_point() else as_float(positive, dist.dtype)  # (B, B) 0/1
    negative = negative if negative.is_floating_point() else as_float(negative, dist.dtype)  # (B, B) 0/1
    w_pos = osm_positive_weights(dist, sigma=sigma, kernel=kernel) * positive  # (B, B)
    w_neg = (margin - dist).clamp_(min=0.0) * negative  # (B, B)
    return w_pos, w_neg

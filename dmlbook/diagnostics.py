"""Measurements of an embedding and of a batch: class spread, trivial tuples and where a loss's gradient goes.

* **Class spread.** :func:`class_means`, :func:`centroid_distances`, :func:`intra_class_spread`,
  :func:`inter_class_distance` and their ratio :func:`relative_spread` say how compact the classes of an
  embedding are; :func:`neighbour_agreement` how often a sample's nearest neighbours share its label.
* **Trivial tuples.** :func:`trivial_fractions` gives the share of a batch's pairs and triplets whose loss is zero
  under two fixed *probe* criteria (a contrastive loss with margins ``m⁺``/``m⁻`` for pairs, a triplet loss with
  margin ``m`` over all triplets), the same for every method, so that methods can be compared (Wu, Manmatha,
  Smola & Krähenbühl, "Sampling Matters in Deep Embedding Learning", ICCV 2017, on why easy tuples stall
  training).
* **Where the gradient goes.** :func:`gradient_share` and :func:`nontrivial_gradient_share`: the share of a
  loss's per-pair gradient ``Σ |∂L/∂m_ij|`` that lands on the pairs that are *not* trivial under the pair probe.

Everything is deterministic and draws no random numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_embeddings_labels
from .losses import ContrastiveLoss, LossDetails, MetricLoss, TripletMarginLoss

__all__ = [
    "centroid_distances",
    "class_means",
    "gradient_share",
    "inter_class_distance",
    "intra_class_spread",
    "neighbour_agreement",
    "nontrivial_gradient_share",
    "relative_spread",
    "trivial_fractions",
]


# --------------------------------------------------------------------------------------------------------
# Class spread
# --------------------------------------------------------------------------------------------------------
def _prepare(embeddings: Tensor | np.ndarray, labels: Any, normalize: bool) -> tuple[Tensor, Tensor]:
    emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, Tensor) else embeddings)
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
    emb, lab = check_embeddings_labels(emb.detach().double(), lab.to(emb.device))
    return (F.normalize(emb, dim=1) if normalize else emb), lab


def _class_means(emb: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Class means (C, D), the class index of each sample (N,) and the class sizes (C,)."""
    classes, index = torch.unique(labels, return_inverse=True)  # (C,), (N,)
    sums = torch.zeros(len(classes), emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(
        0, index, emb
    )
    sizes = torch.bincount(index, minlength=len(classes)).to(emb.dtype)  # (C,)
    return sums / sizes[:, None], index, sizes


def class_means(
    embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True
) -> tuple[Tensor, Tensor]:
    """``(classes, means)``: the sorted distinct labels (C,) and the mean embedding of each class (C, D), float64.

    ``μ_c = 1/|c| Σ_{i: y_i = c} e_i``; with ``normalize`` (default) the embeddings are L2-normalised first, as
    every loss and the evaluation do (the means themselves are not re-normalised).
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, _, _ = _class_means(emb, lab)
    return torch.unique(lab), means


def centroid_distances(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> Tensor:
    """Euclidean distance of every sample to the mean of its class, (N,) float64.

    With ``normalize`` (default) the embeddings are L2-normalised first, as every loss and the evaluation do.
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, index, _ = _class_means(emb, lab)
    return (emb - means[index]).norm(dim=1)


def intra_class_spread(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> float:
    """Mean squared distance of the samples to their class mean, averaged over classes (each class counts once).

    On L2-normalised embeddings (``normalize=True``, the default) a class of unit vectors with mean ``μ_c`` has
    spread ``1 − ||μ_c||²``, so the value lies in [0, 1]: 0 when every class has collapsed to one point, about 1
    when the directions inside a class are unrelated. Classes with a single sample are left out (their spread
    is 0 by definition); if no class has two samples a ValueError is raised.
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, index, sizes = _class_means(emb, lab)
    sq = ((emb - means[index]) ** 2).sum(dim=1)  # (N,)
    per_class = torch.zeros_like(sizes).index_add_(0, index, sq) / sizes  # (C,)
    keep = sizes >= 2
    if not bool(keep.any()):
        raise ValueError("intra_class_spread needs at least one class with two or more samples")
    return float(per_class[keep].mean())


def inter_class_distance(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> float:
    """Mean squared distance between the means of two different classes (over all unordered class pairs).

    The natural scale for :func:`intra_class_spread`: their ratio says how wide the classes are compared with
    how far apart they sit. Needs at least two classes.
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, _, _ = _class_means(emb, lab)
    c = means.shape[0]
    if c < 2:
        raise ValueError("inter_class_distance needs at least two classes")
    sq = torch.cdist(means, means) ** 2  # (C, C)
    return float(sq.sum() / (c * (c - 1)))


def relative_spread(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> float:
    """:func:`intra_class_spread` divided by :func:`inter_class_distance`: how wide the classes are compared with
    how far apart their means sit.

    Scale-free, so it compares embeddings that live at different scales — e.g. a triplet loss with a small
    margin may squeeze the whole embedding into a small cap of the sphere, which makes every absolute spread tiny
    although the classes are not compact relative to each other. Needs two classes, one with two samples.
    """
    return intra_class_spread(embeddings, labels, normalize=normalize) / inter_class_distance(
        embeddings, labels, normalize=normalize
    )


def neighbour_agreement(
    embeddings: Tensor | np.ndarray, labels: Any, *, k: int = 5, normalize: bool = True
) -> float:
    """Share of each sample's ``k`` nearest neighbours (leave-one-out, in the embedding) that have its label,
    averaged over samples: what the eye checks on a map of the embedding, measured in the embedding itself.

    ``1/N Σ_i |{j ∈ kNN(i) : y_j = y_i}| / k``; exact k-NN (:func:`dmlbook.evaluation.knn`) on the
    L2-normalised embeddings by default (the cosine geometry of the losses). Needs ``k < N``.
    """
    from .evaluation import knn

    emb, lab = _prepare(embeddings, labels, normalize)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < emb.shape[0]:
        raise ValueError(
            f"k must be an integer in [1, {emb.shape[0] - 1}] (fewer than the {emb.shape[0]} samples); "
            f"got {k!r}"
        )
    _, index = knn(emb, emb, k, exclude_self=True, backend="torch")  # (N, k)
    return float((lab[index] == lab[:, None]).double().mean())


# --------------------------------------------------------------------------------------------------------
# Trivial tuples and the gradient
# --------------------------------------------------------------------------------------------------------
def gradient_share(pair_gradient: Tensor, mask: Tensor) -> float:
    """``Σ_{mask} g_ij / Σ g_ij`` for a (B, B) non-negative per-pair gradient ``g``; nan when ``Σ g = 0``."""
    if pair_gradient.shape != mask.shape:
        raise ValueError(
            f"pair_gradient {tuple(pair_gradient.shape)} and mask {tuple(mask.shape)} must match"
        )
    g = pair_gradient.detach().abs().double()  # (B, B)
    total = float(g.sum())
    if total == 0.0:
        return float("nan")
    return float(g[mask.bool()].sum()) / total


def _pair_probe(pos_margin: float, neg_margin: float) -> MetricLoss:
    return ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)


def trivial_fractions(
    embeddings: Tensor,
    labels: Tensor,
    *,
    triplet_margin: float = 0.05,
    pos_margin: float = 0.5,
    neg_margin: float = 1.0,
) -> dict[str, Any]:
    """Share of the batch's pairs and triplets that have zero loss under two fixed probe criteria.

    * a pair is trivial when a contrastive loss with margins ``m⁺ = pos_margin``, ``m⁻ = neg_margin`` is zero
      for it: a positive already closer than ``m⁺``, a negative already farther than ``m⁻``;
    * a triplet ``(a, p, n)`` is trivial when ``d_an ≥ d_ap + triplet_margin`` (zero triplet hinge).

    Distances are between L2-normalised embeddings (so in [0, 2]). Returns ``{"pairs": float, "triplets": float,
    "nontrivial_pairs": (B, B) bool}``; the mask marks the non-trivial pairs (for :func:`gradient_share`).
    """
    pairs = _pair_probe(pos_margin, neg_margin).details(embeddings, labels).weights
    triplets = TripletMarginLoss(margin=triplet_margin, mining="all").details(embeddings, labels).weights
    return {
        "pairs": pairs.trivial_fraction,
        "triplets": triplets.trivial_fraction,
        "nontrivial_pairs": pairs.weights > 0,
    }


def nontrivial_gradient_share(
    loss_fn: MetricLoss,
    embeddings: Tensor,
    labels: Tensor,
    *,
    pos_margin: float = 0.5,
    neg_margin: float = 1.0,
    details: LossDetails | None = None,
) -> float:
    """Share of ``loss_fn``'s per-pair gradient ``Σ |∂L/∂m_ij|`` carried by the pairs that are not trivial.

    "Trivial" is the pair probe of :func:`trivial_fractions` (positives closer than ``pos_margin``, negatives
    farther than ``neg_margin``), independent of ``loss_fn``. 1.0 means the loss spends its whole gradient on
    pairs that still violate the margins; a lower value means part of it goes to pairs that are already fine.
    ``details`` may be passed when ``loss_fn.details(embeddings, labels)`` was already computed. nan when the
    loss has no gradient on this batch.
    """
    if details is None:
        details = loss_fn.details(embeddings, labels)
    mask = _pair_probe(pos_margin, neg_margin).details(embeddings, labels).weights.weights > 0  # (B, B)
    return gradient_share(details.pair_gradient, mask)

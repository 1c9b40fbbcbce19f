"""What a mining method does to one batch: its pair weights on one scale, and whom they favour.

Chapter 2 looks at the weights of no mining, batch-hard and semi-hard mining (Hermans, Beyer & Leibe 2017;
Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015), multi-similarity (Wang et al., CVPR 2019) and online soft
mining (Wang, Hua, Kodirov, Hu & Robertson, AAAI 2019) on the same batch, read with ``loss_fn.details(...)``.
Methods express weights on different scales (0/1 masks, counts of active triplets, soft weights):

* :func:`pair_distances`: the batch's distances, also for similarity-based losses;
* :func:`normalized_weights`: each method's positive and negative weights as shares of their sum;
* :func:`weight_profile`: how many pairs a method keeps and whether it favours near or far pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distances import label_masks
from ..losses import LossDetails
from ..mining import PairWeights

__all__ = ["normalized_weights", "pair_distances", "weight_profile"]


def pair_distances(details: LossDetails) -> Tensor:
    """The (B, B) distances between the L2-normalised embeddings that ``details`` saw.

    Distance-based losses report them directly; similarity-based ones (multi-similarity) report cosine
    similarities ``s``, turned into ``d = sqrt(2 − 2s)`` here so that every method can be drawn on one axis.
    """
    if details.matrix_kind == "similarity":
        return (2.0 - 2.0 * details.matrix).clamp(min=0.0).sqrt()  # (B, B)
    return details.matrix


def normalized_weights(weights: PairWeights) -> tuple[Tensor, Tensor]:
    """The positive and negative weights of a method, each divided by its sum over the batch.

    After this each set sums to 1 (or is all zero when the method uses none), i.e. the *share* of the method's
    attention that each pair gets: ``w_ij / sum_kl w_kl``. Returns ``(positive, negative)``, (B, B) each, float64.
    """
    out = []
    for w in (weights.positive, weights.negative):
        w = w.detach().double().clamp(min=0.0)  # (B, B)
        total = float(w.sum())
        out.append(w / total if total > 0 else w)
    return out[0], out[1]


def weight_profile(details: LossDetails, labels: Tensor) -> dict[str, float]:
    """Whom a method weights on one batch, in numbers.

    Returns (distances between L2-normalised embeddings):

    * ``kept_positive``, ``kept_negative``: share of the positive / negative pairs with a non-zero weight;
    * ``mean_d_positive``, ``mean_d_negative``: mean distance of all positive / negative pairs;
    * ``weighted_d_positive``, ``weighted_d_negative``: mean distance under the method's weights,
      ``sum_ij p_ij d_ij`` with ``p`` from :func:`normalized_weights`. A weighted positive distance above the
      plain mean means the method favours far (hard) positives, below it near (easy) ones; for negatives, below
      the plain mean means it favours near (hard) negatives.
    """
    d = pair_distances(details).double()  # (B, B)
    positive, negative = label_masks(torch.as_tensor(labels, device=d.device))  # (B, B) each
    w_pos, w_neg = normalized_weights(details.weights)
    out = {}
    for kind, mask, w in (("positive", positive, w_pos), ("negative", negative, w_neg)):
        n = int(mask.sum())
        out[f"kept_{kind}"] = float(((w > 0) & mask).sum()) / n if n else float("nan")
        out[f"mean_d_{kind}"] = float(d[mask].mean()) if n else float("nan")
        out[f"weighted_d_{kind}"] = float((w * d).sum()) if float(w.sum()) > 0 else float("nan")
    return out

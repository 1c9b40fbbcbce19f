"""Deep metric learning losses: each a short ``nn.Module`` called as ``loss_fn(embeddings, labels)``.

All of them L2-normalise the embeddings inside, work on CPU and CUDA in float32 and float64, validate their input,
and explain themselves through ``loss_fn.details(embeddings, labels)`` (per-pair weights, trivial tuples,
per-pair gradient). ``build_loss(name, **kwargs)`` creates one by the name the command line uses.
"""
from __future__ import annotations

from .._checks import check_choice
from .angular import AngularLoss
from .base import LossDetails, MetricLoss
from .ce_metric import HybridLoss
from .centre import CentreStructuredLoss
from .contrastive import ContrastiveLoss
from .hybrid import HybridTripletLoss
from .lifted import LiftedStructureLoss
from .multi_similarity import MultiSimilarityLoss
from .npairs import NPairsLoss
from .osm_caa import OSMCAALoss
from .ranked_list import RankedListLoss
from .triplet import TripletMarginLoss

LOSSES: dict[str, type[MetricLoss]] = {
    "contrastive": ContrastiveLoss,
    "triplet": TripletMarginLoss,
    "multi_similarity": MultiSimilarityLoss,
    "lifted": LiftedStructureLoss,
    "ranked_list": RankedListLoss,
    "osm": OSMCAALoss,
    "osm_caa": OSMCAALoss,
    "npairs": NPairsLoss,
    "angular": AngularLoss,
    # with their own classifier (or class centres): a trainer passes num_classes and embedding_dim
    "centre": CentreStructuredLoss,  # centre-based structured learning (Gong et al. 2019), chapter 7
    "demal": HybridTripletLoss,  # DeMAL-CNN's hybrid triplet + cross-entropy (He et al.), chapter 8
}


def build_loss(name: str, **kwargs) -> MetricLoss:
    """A loss by name: ``contrastive``, ``triplet``, ``multi_similarity``, ``lifted``, ``ranked_list``, ``osm``
    (OSM without attention), ``osm_caa``, ``npairs``, ``angular``, ``centre`` or ``demal`` (these two need
    ``num_classes=`` and ``embedding_dim=``). Keyword arguments go to the constructor."""
    check_choice(name, LOSSES, "loss")
    if name == "osm":
        kwargs.setdefault("attention", "none")
    try:
        return LOSSES[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad hyper-parameter for loss {name!r}: {err}") from None


__all__ = [
    "LOSSES",
    "AngularLoss",
    "CentreStructuredLoss",
    "ContrastiveLoss",
    "HybridLoss",
    "HybridTripletLoss",
    "LiftedStructureLoss",
    "LossDetails",
    "MetricLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "OSMCAALoss",
    "RankedListLoss",
    "TripletMarginLoss",
    "build_loss",
]

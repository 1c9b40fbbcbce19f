"""Deep metric learning losses: each a short ``nn.Module`` called as ``loss_fn(embeddings, labels)``.

All of them L2-normalise the embeddings inside, work on CPU and CUDA in float32 and float64, validate their input,
and explain themselves through ``loss_fn.details(embeddings, labels)`` (per-pair weights, trivial tuples,
per-pair gradient). ``build_loss(name, **kwargs)`` creates one by the name the command line uses.
"""
from __future__ import annotations

from .._checks import check_choice
from .angular import AngularLoss
from .base import LossDetails, MetricLoss
from .contrastive import ContrastiveLoss
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
}


def build_loss(name: str, **kwargs) -> MetricLoss:
    """A loss by name: ``contrastive``, ``triplet``, ``multi_similarity``, ``lifted``, ``ranked_list``, ``osm``
    (OSM without attention), ``osm_caa``, ``npairs`` or ``angular``. Keyword arguments go to the constructor."""
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
    "ContrastiveLoss",
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

# classification + metric learning (issue 7): cross-entropy on the embeddings plus any loss above
from .ce_metric import HybridLoss

__all__ += ["HybridLoss"]

# centre-based structured metric learning (issue 7, Gong et al. 2019): CE + lifted + class centres; needs
# num_classes= and embedding_dim= (its own classifier and centres)
from .centre import CentreStructuredLoss

LOSSES["centre"] = CentreStructuredLoss
__all__ += ["CentreStructuredLoss"]

# DeMAL-CNN (issue 7, He et al. 2022): triplet loss on the embeddings + cross-entropy of a shared classifier, the
# reconstructed "hybrid loss"; its own classifier needs num_classes= and embedding_dim= (else pass logits=)
from .hybrid import HybridTripletLoss

LOSSES["demal"] = HybridTripletLoss
__all__ += ["HybridTripletLoss"]

"""Deep metric learning losses: each a short ``nn.Module`` called as ``loss_fn(embeddings, labels)``.

All of them L2-normalise the embeddings inside, work on CPU and CUDA in float32 and float64, validate their input,
and explain themselves through ``loss_fn.details(embeddings, labels)`` (per-pair weights, trivial tuples,
per-pair gradient; for the proxy losses, :class:`ProxyLoss`, the same per sample–proxy pair on a (B, P) grid).
``build_loss(name, **kwargs)`` creates one by the name the command line uses.
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
from .margin_softmax import ArcFaceLoss, CosFaceLoss
from .multi_similarity import MultiSimilarityLoss
from .normalized_softmax import NormalizedSoftmaxLoss
from .npairs import NPairsLoss
from .osm_caa import OSMCAALoss
from .proxies import ProxyLoss
from .proxy_anchor import ProxyAnchorLoss
from .proxy_nca import ProxyNCALoss
from .ranked_list import RankedListLoss
from .soft_triple import SoftTripleLoss
from .supcon import SupConLoss
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
    "supcon": SupConLoss,
    # with their own classifier (or class centres): a trainer passes num_classes and embedding_dim
    "centre": CentreStructuredLoss,  # centre-based structured learning (Gong et al. 2019), chapter 7
    "demal": HybridTripletLoss,  # DeMAL-CNN's hybrid triplet + cross-entropy (He et al.), chapter 8
    # proxy- and classification-based baselines (learnable class vectors; lr_mult: their learning-rate factor)
    "proxy_anchor": ProxyAnchorLoss,
    "proxy_nca": ProxyNCALoss,
    "normalized_softmax": NormalizedSoftmaxLoss,
    "arcface": ArcFaceLoss,
    "cosface": CosFaceLoss,
    "soft_triple": SoftTripleLoss,
}


def build_loss(name: str, **kwargs) -> MetricLoss:
    """A loss by name: ``contrastive``, ``triplet``, ``multi_similarity``, ``lifted``, ``ranked_list``, ``osm``
    (OSM without attention), ``osm_caa``, ``npairs``, ``angular``, ``supcon``, ``centre`` or ``demal``, and the
    proxy- and classification-based ``proxy_anchor``, ``proxy_nca``, ``normalized_softmax``, ``arcface``,
    ``cosface`` and ``soft_triple``. ``centre``, ``demal`` and the proxy losses own class vectors and need
    ``num_classes=`` and ``embedding_dim=`` (their class attribute ``needs_classes`` says so; the proxy losses'
    ``lr_mult`` is the learning-rate factor a trainer gives those vectors by default). Keyword arguments go to
    the constructor: ``build_loss("proxy_anchor", num_classes=100, embedding_dim=512, margin=0.1)``."""
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
    "ArcFaceLoss",
    "CentreStructuredLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "HybridLoss",
    "HybridTripletLoss",
    "LiftedStructureLoss",
    "LossDetails",
    "MetricLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "NormalizedSoftmaxLoss",
    "OSMCAALoss",
    "ProxyAnchorLoss",
    "ProxyLoss",
    "ProxyNCALoss",
    "RankedListLoss",
    "SoftTripleLoss",
    "SupConLoss",
    "TripletMarginLoss",
    "build_loss",
]

"""OSM + CAA whose class-aware attention reads a classifier on the backbone's pooled features (the paper's layout)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_int
from .osm_caa import OSMCAALoss


class PooledFeatureCAA(nn.Module):
    """OSM + CAA whose class-aware attention reads a softmax classifier on the backbone's pooled features.

    Wang, Hua, Kodirov, Hu & Robertson (AAAI 2019, Fig. 2) put the CAA classifier on the CNN's features beside the
    embedding layer and train it with cross-entropy together with the metric loss. With pooled features
    ``f`` (B, F), embeddings ``e`` (B, D) and labels ``y``:

    ``logits = W f + b``, ``a_i = p(y_i | f_i)`` (or the Gaussian form), and
    ``L = L_OSM+CAA(e, y; a) + CE(logits, y)``

    (:class:`~dmlbook.losses.osm_caa.OSMCAALoss` with ``logits=``). The cross-entropy also fine-tunes the backbone
    unless ``detach_features`` (then it only trains ``W, b``).

    Args:
        metric: the OSM + CAA loss without its own classifier.
        feature_dim: F, the pooled-feature size (1280 for MobileNetV2).
        num_classes: the number of training classes.
        detach_features: train the classifier on detached features.

    ``forward(embeddings (B, D), labels (B,), features (B, F)) -> scalar``. The fit loop passes ``features`` for
    every loss whose ``needs_features`` is True.
    """

    needs_features = True

    def __init__(
        self, metric: OSMCAALoss, feature_dim: int, num_classes: int, *, detach_features: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(metric, OSMCAALoss) or metric.classifier is not None:
            raise TypeError("metric must be an OSMCAALoss without its own classifier (no num_classes=)")
        check_int(feature_dim, "feature_dim", 1)
        check_int(num_classes, "num_classes", 2)
        self.metric = metric
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.detach_features = bool(detach_features)

    def logits(self, features: Tensor) -> Tensor:
        """Class scores (B, C) of pooled features (B, F)."""
        return self.classifier(features.detach() if self.detach_features else features)  # (B, C)

    def forward(self, embeddings: Tensor, labels: Tensor, features: Tensor) -> Tensor:
        if (
            features.dim() != 2
            or features.shape[0] != embeddings.shape[0]
            or features.shape[1] != self.classifier.in_features
        ):
            raise ValueError(
                f"features must have shape ({embeddings.shape[0]}, {self.classifier.in_features}); "
                f"got {tuple(features.shape)}"
            )
        logits = self.logits(features)  # (B, C)
        return self.metric(embeddings, labels, logits=logits) + torch.nn.functional.cross_entropy(
            logits, labels
        )

"""Embedding networks: ``forward(x) -> (B, embedding_dim)``, not normalised unless ``normalize=True``.

* :mod:`.heads`: :class:`EmbeddingHead` (linear / MLP on precomputed features), :class:`LinearClassifier`.
* :mod:`.small_cnn`: :class:`SmallCNN` for 28-64 px images, optionally with mixed attention in its stages.
* :mod:`.backbones`: :class:`Backbone` over torchvision's resnet50 / googlenet (torchvision imported lazily).
* :mod:`.registry`: :func:`build_model` by name, :func:`register_model` for new architectures.
"""

from .backbones import Backbone
from .heads import EmbeddingHead, LinearClassifier
from .registry import available_models, build_model, register_model
from .small_cnn import SmallCNN

# MobileNetV2 (planned): add `mobilenet.py` that calls register_model(...) and import it here.

__all__ = [
    "Backbone",
    "EmbeddingHead",
    "LinearClassifier",
    "SmallCNN",
    "available_models",
    "build_model",
    "register_model",
]

"""Embedding networks: ``forward(x) -> (B, embedding_dim)``, not normalised unless ``normalize=True``.

* :mod:`.heads`: :class:`EmbeddingHead` (linear / MLP on precomputed features), :class:`LinearClassifier`.
* :mod:`.small_cnn`: :class:`SmallCNN` for 28-64 px images, optionally with mixed attention in its stages.
* :mod:`.backbones`: :class:`Backbone` over torchvision's resnet50 / googlenet (torchvision imported lazily).
* :mod:`.mobilenet`: :class:`MobileNetV2` (width 1.0) loading Google's TF or torchvision's ImageNet weights,
  optionally with mixed attention after chosen stages; registered as ``"mobilenet_v2"``.
* :mod:`.frozen_encoder`: :class:`FrozenEncoder`, a frozen front (the normalised image, or a MobileNetV2 prefix)
  whose outputs are computed once and cached.
* :mod:`.registry`: :func:`build_model` by name, :func:`register_model` for new architectures.
"""

from .backbones import Backbone
from .frozen_encoder import FrozenEncoder
from .heads import EmbeddingHead, LinearClassifier
from .mobilenet import MobileNetV2, mobilenet_v2_transform  # registers "mobilenet_v2"
from .registry import available_models, build_model, register_model
from .small_cnn import SmallCNN

__all__ = [
    "Backbone",
    "EmbeddingHead",
    "FrozenEncoder",
    "LinearClassifier",
    "MobileNetV2",
    "SmallCNN",
    "available_models",
    "build_model",
    "mobilenet_v2_transform",
    "register_model",
]

# log-mel spectrogram embedding for spoken words (issue 7)
from .speech_cnn import SpeechCNN

__all__ += ["SpeechCNN"]

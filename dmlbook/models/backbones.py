"""ImageNet backbones from torchvision with a linear embedding layer, optionally with mixed attention.

``Backbone("resnet50")`` (He et al., CVPR 2016; the backbone of most recent DML papers and our guess for
DeMAL-CNN) and ``Backbone("googlenet")`` (Szegedy et al., CVPR 2015). BN-Inception (Ioffe & Szegedy,
ICML 2015), the other classic DML backbone, is **not** in torchvision; googlenet, the Inception-v1 it adds
batch norm to, is the closest torchvision model. Each backbone is cut into stages; the pooled output of the
last stage goes through a linear layer to the embedding, and a CBAM-style
:class:`~dmlbook.attention.mixed.MixedAttention` block can follow any stage (``attention_stages``). The
blocks are new, randomly initialised layers: with pretrained weights they rescale the pretrained features (by
about 1/4 at initialisation) until fine-tuned.

torchvision is imported only when a Backbone is built, so ``import dmlbook.models`` works without it; when it
is missing the constructor raises an ImportError that says how to get it. Other architectures (e.g. the
MobileNetV2 planned in ``mobilenet.py``) register themselves in :mod:`dmlbook.models.registry` instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention.mixed import MixedAttention
from ._inputs import check_images, flag, positive_int, stage_indices

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """How to cut a torchvision model into stages.

    ``stem``: names of the top-level children before the first stage; ``stages``: for each stage, the names of
    its children and its output channels. Children not named (pooling, dropout, fc, aux heads) are dropped.
    """

    stem: tuple[str, ...]
    stages: tuple[tuple[tuple[str, ...], int], ...]

    @property
    def feature_dim(self) -> int:
        return self.stages[-1][1]


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(
        stem=("conv1", "bn1", "relu", "maxpool"),
        stages=((("layer1",), 256), (("layer2",), 512), (("layer3",), 1024), (("layer4",), 2048)),
    ),
    "googlenet": BackboneSpec(
        stem=("conv1", "maxpool1", "conv2", "conv3", "maxpool2"),
        stages=(
            (("inception3a", "inception3b"), 480),
            (("maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"), 832),
            (("maxpool4", "inception5a", "inception5b"), 1024),
        ),
    ),
}

NOT_IN_TORCHVISION = {
    "bn_inception": "BN-Inception is not in torchvision; use 'googlenet' (Inception-v1, the closest there)",
}


def check_backbone_name(name: object) -> str:
    """Return ``name`` if it is a known backbone; otherwise a ValueError listing the valid ones."""
    if isinstance(name, str) and name in NOT_IN_TORCHVISION:
        raise ValueError(NOT_IN_TORCHVISION[name])
    if not isinstance(name, str) or name not in BACKBONES:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in BACKBONES)}; got {name!r}")
    return name


def import_torchvision(what: str = "Backbone") -> ModuleType:
    """``import torchvision``, or an ImportError that says how to install it."""
    try:
        import torchvision
    except Exception as err:  # ImportError, or a broken install whose C++ operators fail to load
        raise ImportError(
            f"{what} needs torchvision, which is not installed or failed to import "
            f"({type(err).__name__}: {err}). Install it with `pip install torchvision` (a build matching "
            "your torch). Where no torchvision build exists (e.g. this CPU-only torch), use SmallCNN, or "
            "EmbeddingHead on precomputed features."
        ) from err
    return torchvision


class Backbone(nn.Module):
    """A torchvision ImageNet network cut into stages, global average pooling and a linear embedding.

    Args:
        name: ``"resnet50"`` or ``"googlenet"`` (``"bn_inception"`` is not in torchvision: a ValueError).
        embedding_dim: output dimension D.
        pretrained: load torchvision's default ImageNet weights (downloaded once into the torch hub cache).
        attention_stages: 0-based indices of the stages followed by a :class:`MixedAttention` block
            (resnet50 has 4 stages: layer1..layer4; googlenet 3: up to inception3b, 4e, 5b).
        attention_reduction: channel-MLP reduction ratio of the attention blocks.
        normalize: L2-normalise the embeddings (off by default: the losses normalise inside).

    ``forward(x)``: (B, 3, H, W) ImageNet-normalised images (mean ``IMAGENET_MEAN``, std ``IMAGENET_STD``)
    -> (B, embedding_dim); ``features(x)``: the pooled (B, feature_dim) features.
    """

    def __init__(
        self,
        name: str,
        embedding_dim: int = 512,
        *,
        pretrained: bool = True,
        attention_stages: Sequence[int] = (),
        attention_reduction: int = 16,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.name = check_backbone_name(name)
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.pretrained = flag(pretrained, "pretrained")
        spec = BACKBONES[name]
        self.attention_stages = stage_indices(attention_stages, len(spec.stages), "attention_stages")
        reduction = positive_int(attention_reduction, "attention_reduction")
        self.normalize = flag(normalize, "normalize")
        net = self._load(import_torchvision(f"Backbone({name!r})"))
        children = dict(net.named_children())
        stages: OrderedDict[str, nn.Module] = OrderedDict(
            stem=nn.Sequential(*(children[c] for c in spec.stem))
        )
        for i, (names, channels) in enumerate(spec.stages):
            parts = [children[c] for c in names]
            if i in self.attention_stages:
                parts.append(MixedAttention(channels, reduction=reduction))
            stages[f"stage{i}"] = nn.Sequential(*parts)
        self.trunk = nn.Sequential(stages)
        self.feature_dim = spec.feature_dim
        self.embedding = nn.Linear(self.feature_dim, embedding_dim)
        # torchvision's pretrained googlenet expects its inputs re-normalised from ImageNet statistics to
        # (x - 0.5) / 0.5 ("transform_input"); as an affine map: x * std / 0.5 + (mean - 0.5) / 0.5
        self.input_affine = bool(getattr(net, "transform_input", False))
        std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        self.register_buffer(
            "input_scale", (std / 0.5)[None, :, None, None], persistent=False
        )  # (1, 3, 1, 1)
        self.register_buffer("input_shift", ((mean - 0.5) / 0.5)[None, :, None, None], persistent=False)

    def _load(self, torchvision: ModuleType) -> nn.Module:
        weights = "DEFAULT" if self.pretrained else None
        if self.name == "googlenet":
            if self.pretrained:
                return torchvision.models.googlenet(weights=weights)
            return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
        return getattr(torchvision.models, self.name)(weights=weights)

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled last-stage features: (B, 3, H, W) -> (B, feature_dim)."""
        x = check_images(x, 3, min_size=32)  # (B, 3, H, W)
        if self.input_affine:
            x = x * self.input_scale + self.input_shift  # (B, 3, H, W)
        return self.trunk(x).mean(dim=(2, 3))  # (B, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        z = self.embedding(self.features(x))  # (B, D)
        return F.normalize(z, dim=1) if self.normalize else z  # (B, D)


__all__ = ["BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD", "Backbone", "BackboneSpec", "import_torchvision"]

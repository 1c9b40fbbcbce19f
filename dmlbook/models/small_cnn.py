"""A small CNN embedding network for 28x28 to 64x64 images that trains in seconds on a laptop CPU.

Stage ``i`` is ``conv3x3 -> BatchNorm -> ReLU -> [MixedAttention] -> 2x2 max-pool`` with ``width * 2**i``
channels; then global average pooling and a linear embedding layer. With ``attention=True`` a CBAM-style
:class:`~dmlbook.attention.mixed.MixedAttention` block sits in every stage (or in ``attention_stages``),
before the pooling so that its spatial map has the stage's full resolution: the "attention in each embedding
network" of DeMAL-CNN (He et al. 2022) at toy scale. The placement is ours; the paper does not give it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..attention.mixed import MixedAttention
from ._inputs import check_images, flag, positive_int, stage_indices


def conv_stage(
    in_channels: int, out_channels: int, *, attention: bool = False, reduction: int = 16
) -> nn.Sequential:
    """``conv3x3 -> BN -> ReLU -> [MixedAttention] -> maxpool2``: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels),
        relu=nn.ReLU(inplace=True),
    )
    if attention:
        layers["attention"] = MixedAttention(out_channels, reduction=reduction)
    layers["pool"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-pool stages, global average pooling and a linear embedding.

    Args:
        in_channels: image channels (1 for grey, 3 for RGB).
        embedding_dim: output dimension D.
        width: channels of the first stage; stage ``i`` has ``width * 2**i``.
        attention: put a :class:`MixedAttention` block in every stage (see ``attention_stages``).
        attention_stages: 0-based indices of the stages that get a block; giving it implies attention.
            ``None`` (default) means all stages when ``attention=True`` and none otherwise.
        image_size: nominal input size; it sets the default depth (3 stages below 48 px, 4 from 48 px) so
            that the last feature map is 3-5 px. Any input with H, W >= ``2**num_stages`` is accepted.
        num_stages: number of stages, overriding the choice from ``image_size``.
        attention_reduction: channel-MLP reduction ratio of the attention blocks.
        normalize: L2-normalise the embeddings (off by default: the losses normalise inside).

    ``forward(x)``: (B, in_channels, H, W) -> (B, embedding_dim); ``features(x)``: the pooled
    (B, feature_dim) features before the embedding layer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        embedding_dim: int = 64,
        *,
        width: int = 32,
        attention: bool = False,
        attention_stages: Sequence[int] | None = None,
        image_size: int = 28,
        num_stages: int | None = None,
        attention_reduction: int = 16,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.width = positive_int(width, "width")
        self.image_size = positive_int(image_size, "image_size")
        if num_stages is None:
            num_stages = 3 if image_size < 48 else 4
        self.num_stages = positive_int(num_stages, "num_stages")
        if 2**num_stages > image_size:
            raise ValueError(
                f"num_stages={num_stages} halves the image {num_stages} times, too many for "
                f"image_size={image_size}; use at most {image_size.bit_length() - 1}"
            )
        flag(attention, "attention")
        if attention_stages is None:
            stages = tuple(range(num_stages)) if attention else ()
        else:
            stages = stage_indices(attention_stages, num_stages, "attention_stages")
            if not attention and stages:
                raise ValueError(
                    f"attention_stages={stages} was given with attention=False; "
                    f"set attention=True (or drop attention_stages)"
                )
        self.attention_stages = stages
        self.normalize = flag(normalize, "normalize")
        reduction = positive_int(attention_reduction, "attention_reduction")
        channels = [in_channels] + [width * 2**i for i in range(num_stages)]
        self.stages = nn.Sequential(
            *(
                conv_stage(channels[i], channels[i + 1], attention=i in stages, reduction=reduction)
                for i in range(num_stages)
            )
        )
        self.feature_dim = channels[-1]
        self.embedding = nn.Linear(self.feature_dim, embedding_dim)

    def features(self, x: Tensor) -> Tensor:
        """Globally average-pooled features: (B, in_channels, H, W) -> (B, feature_dim)."""
        x = check_images(x, self.in_channels, min_size=2**self.num_stages)  # (B, C_in, H, W)
        maps = self.stages(x)  # (B, feature_dim, H / 2**S, W / 2**S)
        return maps.mean(dim=(2, 3))  # (B, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        z = self.embedding(self.features(x))  # (B, D)
        return F.normalize(z, dim=1) if self.normalize else z  # (B, D)


__all__ = ["SmallCNN", "conv_stage"]

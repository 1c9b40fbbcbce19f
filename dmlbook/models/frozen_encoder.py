"""A frozen image encoder: the fixed front of a network, run once per image so that its outputs can be cached.

``"pixels"`` only normalises the image with the ImageNet mean / std (the trained part then sees the image);
``"mobilenet_v2"`` is ImageNet MobileNetV2 (Sandler et al., *MobileNetV2: Inverted Residuals and Linear
Bottlenecks*, CVPR 2018) up to and including stage ``stage`` of :data:`~dmlbook.models.mobilenet.STAGES` (stage 4:
64 channels at stride 16, a 14 x 14 grid at 224 px), with every parameter frozen and BatchNorm in eval mode. For
inputs ``x`` in [0, 1] the output is ``trunk((x − μ) / σ)``, ``μ, σ`` the statistics the weights were trained
with (``[-1, 1]`` scaling for Google's TF weights, ImageNet mean / std for torchvision's).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_choice
from .mobilenet import IMAGENET_MEAN, IMAGENET_STD, STAGES, TF_MEAN, TF_STD, MobileNetV2

#: What :class:`FrozenEncoder` can run: the normalised image itself, or a MobileNetV2 prefix.
BACKBONES = ("pixels", "mobilenet_v2")


class FrozenEncoder(nn.Module):
    """The fixed front of the network, applied once to every image (its outputs are cached for training).

    Args:
        backbone: ``"pixels"`` (normalise with the ImageNet mean / std; output = the image) or
            ``"mobilenet_v2"`` (ImageNet MobileNetV2 stages ``0 .. stage``, inputs scaled to [-1, 1] for the TF
            weights or ImageNet-normalised for torchvision's).
        stage: last MobileNetV2 stage kept (0-8, :data:`~dmlbook.models.mobilenet.STAGES`); ignored for pixels.
        pretrained: MobileNetV2 weights: ``True`` (``$DMLBOOK_DATA/weights/mobilenet_v2_imagenet_from_tflite.pt``)
            or a path; ``False`` keeps a random (untrained) trunk, only useful for tests.

    ``forward(images)``: uint8 (B, 3, H, W) or float in [0, 1] -> float (B, out_channels, H / stride, W / stride).
    Every parameter is frozen (``requires_grad=False``) and the module stays in eval mode.
    """

    def __init__(self, backbone: str = "pixels", *, stage: int = 4, pretrained: bool | str = True) -> None:
        super().__init__()
        self.backbone = check_choice(backbone, BACKBONES, "backbone")
        self.trunk: nn.Module | None = None
        if backbone == "pixels":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
            self.out_channels, self.stride, self.stage = 3, 1, None
        else:
            if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < len(STAGES):
                raise ValueError(
                    f"stage must be an int in [0, {len(STAGES) - 1}] (MobileNetV2 stages); got {stage!r}"
                )
            net = MobileNetV2(
                pretrained=pretrained if pretrained else None,
                weights_format=None if pretrained else "torchvision",
            )
            self.trunk = net.trunk[: STAGES[stage][1] + 1]
            tf = net.weights_format == "tf"
            mean, std = (TF_MEAN, TF_STD) if tf else (IMAGENET_MEAN, IMAGENET_STD)
            self.out_channels, self.stride, self.stage = STAGES[stage][2], STAGES[stage][3], stage
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32)[None, :, None, None])
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32)[None, :, None, None])
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:  # frozen: always in eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a (B, 3, H, W) tensor; got {got}")
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()  # (B, 3, H, W) in [0, 1]
        x = (x - self.mean) / self.std  # (B, 3, H, W)
        return x if self.trunk is None else self.trunk(x)  # (B, C, H / stride, W / stride)

    def extra_repr(self) -> str:
        return (
            f"backbone={self.backbone!r}, stage={self.stage}, out_channels={self.out_channels}, "
            f"stride={self.stride}"
        )


__all__ = ["BACKBONES", "FrozenEncoder"]

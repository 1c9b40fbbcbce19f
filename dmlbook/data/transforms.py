"""Small image transforms without torchvision (which does not load with every torch build).

Each transform is a callable object that takes a PIL image or a tensor ``(C, H, W)`` (float, or ``uint8`` as
decoded images are kept by :class:`~dmlbook.data.image_cache.CachedImages`) and returns the same kind and dtype,
except :class:`ToTensor` (PIL or uint8 -> float tensor in [0, 1]) and :class:`Normalize` (float tensor only). Random
transforms draw from torch's global generator, so ``torch.manual_seed`` and the DataLoader's per-worker seeds
make them reproducible. Typical pipelines: :func:`train_transform` and :func:`eval_transform`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TensorFlow / TF-slim ImageNet models (e.g. Google's MobileNetV2) read pixels scaled to [-1, 1]:
# ``Normalize(TF_MEAN, TF_STD)`` after ToTensor gives (x - 0.5) / 0.5 = pixel / 127.5 - 1.
TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("bilinear", "bicubic")


def _check_interpolation(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; got {interpolation!r}")
    return interpolation


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if isinstance(h, bool) or not all(isinstance(v, int) and v > 0 for v in (h, w)):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair; got {size!r}")
    return h, w


def _is_tensor(img: Any) -> bool:
    if isinstance(img, Tensor):
        if img.dim() < 2:
            raise ValueError(f"image tensors must be (C, H, W) or (H, W); got shape {tuple(img.shape)}")
        return True
    if not hasattr(img, "crop"):
        raise TypeError(f"expected a PIL image or a torch.Tensor; got {type(img).__name__}")
    return False


def image_size(img: Any) -> tuple[int, int]:
    """(height, width) of a PIL image or a ``(..., H, W)`` tensor."""
    return tuple(img.shape[-2:]) if _is_tensor(img) else (img.size[1], img.size[0])


def crop(img: Any, top: int, left: int, height: int, width: int) -> Any:
    """Crop a box; parts outside the image are filled with zeros."""
    if not _is_tensor(img):
        return img.crop((left, top, left + width, top + height))
    h, w = img.shape[-2:]
    pad = [max(0, -left), max(0, left + width - w), max(0, -top), max(0, top + height - h)]
    if any(pad):
        img = F.pad(img, pad)
        top, left = top + pad[2], left + pad[0]
    return img[..., top:top + height, left:left + width]


def resize(img: Any, size: tuple[int, int], *, interpolation: str = "bilinear") -> Any:
    """Resize to exactly (height, width), ``interpolation`` "bilinear" (default) or "bicubic" (antialiased when
    shrinking). A ``uint8`` tensor stays ``uint8`` (interpolated in float32, rounded and clamped to [0, 255])."""
    _check_interpolation(interpolation)
    if not _is_tensor(img):
        from PIL import Image  # a PIL image was passed, so PIL is installed

        resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
        return img.resize((size[1], size[0]), resample)
    x = img.float() if not img.is_floating_point() else img
    squeeze = x.dim() == 2
    x = x[None, None] if squeeze else x[None]
    x = F.interpolate(x, size=size, mode=interpolation, align_corners=False, antialias=True)
    x = x[0, 0] if squeeze else x[0]  # (C, height, width) or (height, width)
    if img.dtype == torch.uint8:
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x


def hflip(img: Any) -> Any:
    """Mirror left-right."""
    return img.flip(-1) if _is_tensor(img) else img.transpose(0)  # 0 == Image.Transpose.FLIP_LEFT_RIGHT


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ResizeShorter:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio (``interpolation``: see
    :func:`resize`)."""

    def __init__(self, size: int, *, interpolation: str = "bilinear") -> None:
        self.size = _pair(size, "size")[0]
        self.interpolation = _check_interpolation(interpolation)

    def __call__(self, img: Any) -> Any:
        h, w = image_size(img)
        s = self.size / min(h, w)
        return resize(img, (max(1, round(h * s)), max(1, round(w * s))), interpolation=self.interpolation)

    def __repr__(self) -> str:
        extra = "" if self.interpolation == "bilinear" else f", interpolation={self.interpolation!r}"
        return f"ResizeShorter({self.size}{extra})"


class Resize:
    """Resize to exactly ``size`` (int: square)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "size")

    def __call__(self, img: Any) -> Any:
        return resize(img, self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class CenterCrop:
    """Crop the central ``size`` box (zero-padded if the image is smaller)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "size")

    def __call__(self, img: Any) -> Any:
        (h, w), (ch, cw) = image_size(img), self.size
        return crop(img, (h - ch) // 2, (w - cw) // 2, ch, cw)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomCrop:
    """Crop a random ``size`` box after zero-padding each side by ``padding`` pixels."""

    def __init__(self, size: int | Sequence[int], *, padding: int = 0) -> None:
        self.size, self.padding = _pair(size, "size"), int(padding)
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0; got {padding}")

    def __call__(self, img: Any) -> Any:
        (h, w), (ch, cw), p = image_size(img), self.size, self.padding
        top = int(torch.randint(-p, max(h + p - ch, -p) + 1, ()))
        left = int(torch.randint(-p, max(w + p - cw, -p) + 1, ()))
        return crop(img, top, left, ch, cw)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomResizedCrop:
    """Crop a random box covering a ``scale`` fraction of the area with aspect ratio in ``ratio`` (log-uniform),
    resized to ``size``; falls back to a central crop after 10 failed tries (Szegedy et al., "Going Deeper with
    Convolutions", CVPR 2015)."""

    def __init__(self, size: int | Sequence[int], *, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.size = _pair(size, "size")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1; got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max; got {ratio}")
        self.scale, self.ratio = scale, ratio

    def box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """A random (top, left, height, width) inside an h x w image."""
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            area = h * w * float(torch.empty(()).uniform_(*self.scale))
            r = math.exp(float(torch.empty(()).uniform_(*log_r)))
            cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
            if 0 < cw <= w and 0 < ch <= h:
                return int(torch.randint(0, h - ch + 1, ())), int(torch.randint(0, w - cw + 1, ())), ch, cw
        r = min(max(w / h, self.ratio[0]), self.ratio[1])
        cw, ch = (w, round(w / r)) if w / h < r else (round(h * r), h)
        cw, ch = min(cw, w), min(ch, h)
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, img: Any) -> Any:
        return resize(crop(img, *self.box(*image_size(img))), self.size)

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class RandomHorizontalFlip:
    """Mirror with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1]; got {p}")
        self.p = float(p)

    def __call__(self, img: Any) -> Any:
        return hflip(img) if float(torch.rand(())) < self.p else img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ToTensor:
    """PIL image (or HxW[xC] uint8 array) -> float32 tensor (C, H, W) in [0, 1]; float tensors pass through and
    uint8 tensors are scaled by 1/255."""

    def __call__(self, img: Any) -> Tensor:
        if isinstance(img, Tensor):
            return img.float().div_(255) if img.dtype == torch.uint8 else img
        arr = np.asarray(img)
        x = torch.from_numpy(arr.copy())
        x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
        return x.float().div_(255) if arr.dtype == np.uint8 else x.float()

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(x - mean) / std`` per channel, for a float tensor (C, H, W)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std need one value per channel and std > 0; got {mean}, {std}")
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 3:
            raise TypeError("Normalize expects a float tensor (C, H, W); put ToTensor() before it")
        if x.shape[0] != self.mean.shape[0]:
            raise ValueError(f"Normalize has {self.mean.shape[0]} channels but the image has {x.shape[0]}")
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def train_transform(size: int = 224, *, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, scale: tuple[float, float] = (0.08, 1.0)) -> Compose:
    """The usual DML training augmentation: random resized crop (covering a ``scale`` fraction of the image),
    horizontal flip, to tensor, normalize."""
    return Compose([RandomResizedCrop(size, scale=scale), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)])


def eval_transform(size: int = 224, *, resize_to: int | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                   std: Sequence[float] = IMAGENET_STD, interpolation: str = "bilinear") -> Compose:
    """Resize the shorter side to ``resize_to`` (default ``size * 8 / 7``, i.e. 256 for 224), centre-crop
    ``size``, to tensor, normalize. For TF-style models pass ``mean=TF_MEAN, std=TF_STD`` (inputs in [-1, 1])."""
    resize_to = round(size * 8 / 7) if resize_to is None else resize_to
    return Compose([ResizeShorter(resize_to, interpolation=interpolation), CenterCrop(size), ToTensor(),
                    Normalize(mean, std)])

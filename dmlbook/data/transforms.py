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
    return img[..., top : top + height, left : left + width]


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

    def __init__(
        self,
        size: int | Sequence[int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
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


def train_transform(
    size: int = 224,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    scale: tuple[float, float] = (0.08, 1.0),
) -> Compose:
    """The usual DML training augmentation: random resized crop (covering a ``scale`` fraction of the image),
    horizontal flip, to tensor, normalize."""
    return Compose(
        [RandomResizedCrop(size, scale=scale), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)]
    )


def eval_transform(
    size: int = 224,
    *,
    resize_to: int | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "bilinear",
) -> Compose:
    """Resize the shorter side to ``resize_to`` (default ``size * 8 / 7``, i.e. 256 for 224), centre-crop
    ``size``, to tensor, normalize. For TF-style models pass ``mean=TF_MEAN, std=TF_STD`` (inputs in [-1, 1])."""
    resize_to = round(size * 8 / 7) if resize_to is None else resize_to
    return Compose(
        [
            ResizeShorter(resize_to, interpolation=interpolation),
            CenterCrop(size),
            ToTensor(),
            Normalize(mean, std),
        ]
    )


class RandomAffine:
    """A random affine jitter of a batch of images, one draw per image, in one ``grid_sample`` call.

    Each image gets a rotation by θ, a horizontal shear by φ, an isotropic scale s and a shift (t_x, t_y), all
    uniform: θ ∈ [-``degrees``, ``degrees``], φ ∈ [-``shear``, ``shear``] (degrees), s ∈ ``scale``, t ∈
    [-``translate``, ``translate``] (a fraction of the image size). The output pixel at normalised position
    p ∈ [-1, 1]² reads the input at

        A p + 2 t,    A = s · R(θ) · [[1, tan φ], [0, 1]],

    bilinearly, with zeros outside the image (the background of ink-is-1 images such as Omniglot's). The
    ranges are symmetric, so drawing the output-to-input map is the same as drawing the forward one up to the
    distribution of s (which is near 1). Small jitters of this kind are the "affine distortions" of handwritten
    characters of Simard, Steinkraus & Platt ("Best practices for convolutional neural networks applied to visual
    document analysis", ICDAR 2003).

    ``x``: ``(B, C, H, W)`` or one image ``(C, H, W)``; float, or ``uint8`` (interpolated in float32, rounded and
    clamped back). The draws come from ``generator`` when given, else from torch's global generator (so
    ``torch.manual_seed`` makes them reproducible); the identity is returned for ``p`` = 0 draws.

    Args:
        degrees: largest rotation angle (degrees, >= 0).
        translate: largest shift as a fraction of the image size, in [0, 1).
        scale: (smallest, largest) scale factor, 0 < smallest <= largest.
        shear: largest horizontal shear angle (degrees, in [0, 90)).
        p: probability that an image is jittered at all (the others pass unchanged).
    """

    def __init__(
        self,
        *,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
        shear: float = 10.0,
        p: float = 1.0,
    ) -> None:
        for name, value in (("degrees", degrees), ("translate", translate), ("shear", shear), ("p", p)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        if not translate < 1:
            raise ValueError(f"translate must be a fraction of the image size in [0, 1); got {translate!r}")
        if not shear < 90:
            raise ValueError(f"shear must be an angle in [0, 90) degrees; got {shear!r}")
        if not p <= 1:
            raise ValueError(f"p must be in [0, 1]; got {p!r}")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(
                f"scale must be a (smallest, largest) pair with 0 < smallest <= largest; got {scale!r}"
            )
        self.degrees, self.translate, self.shear, self.p = (
            float(degrees),
            float(translate),
            float(shear),
            float(p),
        )
        self.scale = (float(scale[0]), float(scale[1]))

    def matrices(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` random output-to-input maps ``(n, 2, 3)`` in ``affine_grid``'s normalised coordinates."""
        u = torch.rand(n, 6, generator=generator)  # (n, 6) uniform draws
        theta = torch.deg2rad((2 * u[:, 0] - 1) * self.degrees)  # (n,)
        phi = torch.deg2rad((2 * u[:, 1] - 1) * self.shear)  # (n,)
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 2]  # (n,)
        t = 2 * (2 * u[:, 3:5] - 1) * self.translate  # (n, 2): a fraction of the size is 2x that in [-1, 1]
        keep = u[:, 5] >= self.p  # (n,) images left unchanged
        cos, sin, tan = torch.cos(theta), torch.sin(theta), torch.tan(phi)  # (n,)
        a = torch.stack([torch.stack([cos, cos * tan - sin], 1), torch.stack([sin, sin * tan + cos], 1)], 1)
        a = s[:, None, None] * a  # (n, 2, 2) = s R(θ) [[1, tan φ], [0, 1]]
        out = torch.cat([a, t[:, :, None]], dim=2)  # (n, 2, 3)
        out[keep] = torch.eye(2, 3)
        return out

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"RandomAffine expects a tensor (B, C, H, W) or (C, H, W); got {type(x).__name__}"
            )
        if x.dim() not in (3, 4):
            raise ValueError(
                f"RandomAffine expects a tensor (B, C, H, W) or (C, H, W); got shape {tuple(x.shape)}"
            )
        single = x.dim() == 3
        batch = x[None] if single else x  # (B, C, H, W)
        y = batch if batch.is_floating_point() else batch.float()  # (B, C, H, W)
        theta = self.matrices(y.shape[0], generator=generator).to(y.device, y.dtype)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(y.shape), align_corners=False)  # (B, H, W, 2)
        y = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, C, H, W)
        if not batch.is_floating_point():
            y = y.round_().clamp_(0, 255).to(batch.dtype)
        return y[0] if single else y

    def __repr__(self) -> str:
        return (
            f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
            f"shear={self.shear}, p={self.p})"
        )

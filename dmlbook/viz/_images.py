"""Small, dependency-free rendering helpers for the embedding explorer.

* :func:`check_images` validates what a user passes as ``images`` (one array per sample, grey / RGB / RGBA,
  channels first or last, any numeric dtype);
* :func:`png_data_uri` turns one image into a ``data:image/png;base64,...`` URI with a tiny PNG encoder
  (``zlib`` + ``struct``), so that a hover never waits for matplotlib or Pillow;
* :func:`feature_svg` draws an embedding vector as an inline SVG bar chart, for samples without images.

Nothing here imports matplotlib, plotly or ipywidgets.
"""

from __future__ import annotations

import base64
import itertools
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["check_images", "feature_svg", "png_data_uri", "to_uint8_image"]


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _image_shape_ok(shape: tuple[int, ...]) -> bool:
    if len(shape) == 2:
        return shape[0] > 0 and shape[1] > 0
    if len(shape) == 3:
        last, first = shape[2] in (1, 3, 4), shape[0] in (1, 3)  # (H, W, C) or (C, H, W)
        return (last or first) and min(shape) > 0
    return False


def check_images(images: Any, n: int, name: str = "images") -> Sequence[Any]:
    """Validate ``images``: an (N, H, W[, C]) / (N, C, H, W) array or tensor, or a sequence of N images.

    Returns something indexable by sample (the array itself, or the sequence); every image has the shape
    (H, W), (H, W, C) with C in {1, 3, 4} or (C, H, W) with C in {1, 3}. Raises TypeError / ValueError
    naming ``name``.
    """
    if isinstance(images, (str, bytes)) or not (
        hasattr(images, "__len__") and hasattr(images, "__getitem__")
    ):
        raise TypeError(
            f"{name} must be an array or tensor of shape (N, H, W[, C]) or a sequence of N images; "
            f"got {type(images).__name__}"
        )
    if len(images) != n:
        raise ValueError(f"{name} has {len(images)} entries but embeddings has {n} rows; they must match")
    if hasattr(images, "shape") and len(images.shape) >= 3:  # one stacked array or tensor
        shape = tuple(int(s) for s in images.shape[1:])
        if not _image_shape_ok(shape):
            raise ValueError(
                f"{name} must have shape (N, H, W), (N, H, W, C) with C in 1, 3, 4 or (N, C, H, W) with C in "
                f"1, 3; got {tuple(images.shape)}"
            )
        kind = _as_array(images[:1]).dtype.kind
        if kind not in "biuf":
            raise TypeError(f"{name} must hold numbers (uint8 or float); got dtype {images.dtype}")
        return images
    if hasattr(images, "shape"):
        raise ValueError(f"{name} must hold one 2-D or 3-D image per sample; got shape {tuple(images.shape)}")
    for i, img in enumerate(images):  # a sequence of images (possibly of different sizes)
        try:
            arr = _as_array(img)
        except Exception as err:  # noqa: BLE001
            raise TypeError(f"{name}[{i}] could not be converted to an array: {err}") from None
        if not _image_shape_ok(arr.shape):
            raise ValueError(
                f"{name}[{i}] must have shape (H, W), (H, W, C) with C in 1, 3, 4 or (C, H, W) with C in "
                f"1, 3; got {arr.shape}"
            )
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name}[{i}] must hold numbers (uint8 or float); got dtype {arr.dtype}")
    return images


def to_uint8_image(image: Any) -> np.ndarray:
    """One image -> (H, W) grey or (H, W, 3|4) uint8, channels last.

    uint8 is kept; floats in [0, 1] are scaled by 255; anything else (e.g. mean/std-normalised tensors) is
    min-max scaled per image. Non-finite pixels become 0.
    """
    arr = _as_array(image)
    kind = arr.dtype.kind
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4) and arr.shape[0] in (1, 3):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]  # (H, W, 1) -> (H, W)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if kind in "bf" and lo >= 0.0 and hi <= 1.0:
        scaled = arr  # bool masks and [0, 1] floats
    elif kind in "iu" and lo >= 0.0 and hi <= 255.0:
        scaled = arr / 255.0  # integer images stored in a wider dtype
    else:
        scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)  # e.g. mean/std-normalised
    return np.ascontiguousarray(np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bytes(image: Any) -> bytes:
    """Encode one image (see :func:`to_uint8_image`) as PNG bytes (8-bit grey, RGB or RGBA)."""
    arr = to_uint8_image(image)
    height, width = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]  # PNG colour types: grey, RGB, RGBA
    rows = arr.reshape(height, -1)  # (H, W*C)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def png_data_uri(image: Any) -> str:
    """``data:image/png;base64,...`` for one image."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def feature_svg(vector: np.ndarray, *, width: int = 160, height: int = 48, max_bars: int = 64) -> str:
    """An inline SVG bar chart of one embedding vector (binned to at most ``max_bars`` bars by averaging)."""
    v = np.asarray(vector, dtype=np.float64).ravel()
    if v.size > max_bars:
        edges = np.linspace(0, v.size, max_bars + 1).astype(int)
        v = np.array([v[a:b].mean() for a, b in itertools.pairwise(edges)])
    scale = float(np.abs(v).max()) or 1.0
    bar_w = width / v.size
    mid = height / 2
    bars = []
    for i, value in enumerate(v):
        h = abs(value) / scale * (mid - 1)
        y = mid - h if value >= 0 else mid
        colour = "#0173b2" if value >= 0 else "#d55e00"
        bars.append(
            f'<rect x="{i * bar_w:.2f}" y="{y:.2f}" width="{max(bar_w - 0.5, 0.5):.2f}" '
            f'height="{max(h, 0.5):.2f}" fill="{colour}"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'class="dmlbook-feature-bars"><line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#999" '
        f'stroke-width="0.5"/>{"".join(bars)}</svg>'
    )

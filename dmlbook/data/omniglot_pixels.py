"""Omniglot's pixels: decoding the official PNGs and downsampling them by exact area averaging.

The official images (Lake, Salakhutdinov & Tenenbaum, Science 2015; brendenlake/omniglot) are 105x105, 1-bit
grey, non-interlaced PNGs. :func:`decode_ink` inflates them and undoes their scanline filters for all images at
once (any other PNG goes through Pillow) and returns ink masks; :func:`downsample` turns ink masks into
``image_size`` x ``image_size`` uint8 images: with c the fraction of an output pixel's area that is ink (in
integers, so it does not depend on the image library or the BLAS), ``binarize`` gives 255 where c >= 1/4, else
round(255 c). :mod:`dmlbook.data.omniglot` builds the datasets on these (and re-exports both functions).
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._checks import check_flag, check_int
from ._optional import require

ORIGINAL_SIZE = 105
EMBEDDED_SIZE = 28  # the default output size (that of the embedded copy)
_REPO = "https://github.com/brendenlake/omniglot"
_WHERE = f"get images_background.zip and images_evaluation.zip from {_REPO} (folder python/)"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BATCH = 256  # images per block of the area downsampling (about 12 MB of float32)


class _Damaged(Exception):
    """One file could not be decoded (raised inside this module, re-raised with the file's name)."""


def _damaged(path: object, problem: str, *, member: str = "") -> Exception:
    """The error for a damaged file: ``path`` (a zip or folder) and the ``member`` image in it, if any."""
    # imported here: download imports the registry, which imports dmlbook.data.omniglot and so this module
    from .download import DamagedFileError

    what = f"{path}, file {member}," if member else f"{path}"
    return DamagedFileError(
        f"dataset 'omniglot': {what} is damaged or not in the official layout ({problem}); {_WHERE}",
        path=Path(str(path)),
    )


# ------------------------------------------------------------------------------------------------ PNG decoding
_ROW_BYTES = (ORIGINAL_SIZE + 7) // 8  # 14 bytes per row of a 1-bit 105-pixel-wide image


def _png_chunks(blob: bytes) -> tuple[bytes, bytes]:
    """``(IHDR, IDAT)`` payloads of a PNG; raises :class:`_Damaged` for a bad signature, CRC or truncation."""
    if blob[:8] != _PNG_SIGNATURE:
        raise _Damaged("not a PNG file (bad signature)")
    pos, ihdr, idat = 8, b"", []
    while pos + 12 <= len(blob):
        length, kind = struct.unpack(">I4s", blob[pos : pos + 8])
        end = pos + 12 + length
        if end > len(blob):
            raise _Damaged("truncated PNG")
        if zlib.crc32(blob[pos + 4 : end - 4]) != int.from_bytes(blob[end - 4 : end], "big"):
            raise _Damaged(f"bad CRC in the {kind.decode('latin-1')} chunk")
        if kind == b"IHDR":
            ihdr = blob[pos + 8 : end - 4]
        elif kind == b"IDAT":
            idat.append(blob[pos + 8 : end - 4])
        elif kind == b"IEND":
            return ihdr, b"".join(idat)
        pos = end
    raise _Damaged("truncated PNG (no IEND chunk)")


def _paeth(left: np.ndarray, up: np.ndarray, up_left: np.ndarray) -> np.ndarray:
    """The PNG Paeth predictor (int16 arrays)."""
    p = left + up - up_left
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
    return np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))


def _unfilter(raw: np.ndarray) -> np.ndarray:
    """Undo the PNG scanline filters of images with less than 8 bits per pixel (filter unit: 1 byte).

    ``raw`` (N, H, 1 + B): each row's filter type then its B bytes; returns (N, H, B). Vectorised over images;
    the byte-sequential filters (Sub, Average, Paeth; rare here) loop over the B bytes of a row.
    """
    height, width = raw.shape[1:]
    out = raw[:, :, 1:].copy()  # (N, H, B) rows with filter None are final already
    kinds = raw[:, :, 0]  # (N, H)
    for r in range(height):
        cur, prev = out[:, r], (out[:, r - 1] if r else np.zeros_like(out[:, 0]))  # (N, B), (N, B)
        np.add(cur, prev, out=cur, where=(kinds[:, r] == 2)[:, None])  # Up; uint8 wraps modulo 256 as PNG's
        seq = np.flatnonzero((kinds[:, r] == 1) | (kinds[:, r] == 3) | (kinds[:, r] == 4))
        if seq.size:
            k = kinds[seq, r]  # (S,)
            c, p = cur[seq].astype(np.int16), prev[seq].astype(np.int16)  # (S, B)
            zero = np.zeros(len(seq), np.int16)
            for j in range(width - 1):
                left = c[:, j - 1] if j else zero
                up_left = p[:, j - 1] if j else zero
                pred = np.where(
                    k == 1, left, np.where(k == 3, (left + p[:, j]) // 2, _paeth(left, p[:, j], up_left))
                )
                c[:, j] = (c[:, j] + pred) & 255
            cur[seq] = c.astype(np.uint8)
    return out


def _decode_with_pil(blob: bytes) -> np.ndarray:
    """Ink mask of any PNG Pillow reads (grey level < 128 is ink)."""
    image_mod = require("PIL.Image", "decoding Omniglot PNGs that are not 1-bit grey")
    try:
        with image_mod.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("L")) < 128
    except (OSError, ValueError, SyntaxError) as err:
        raise _Damaged(f"{type(err).__name__}: {err}") from err


def _decode_packed(blobs: Sequence[bytes], names: Sequence[str], where: str | Path) -> np.ndarray:
    """Omniglot PNGs -> (N, 105, 14) uint8: each row's 105 pixels bit-packed, 1 = white (background)."""
    fast_header = struct.pack(">IIBBBBB", ORIGINAL_SIZE, ORIGINAL_SIZE, 1, 0, 0, 0, 0)
    expected = ORIGINAL_SIZE * (1 + _ROW_BYTES)
    raw = []
    for blob, name in zip(blobs, names):
        try:
            ihdr, idat = _png_chunks(blob)
            if ihdr == fast_header:
                data = zlib.decompress(idat)
                if len(data) != expected:
                    raise _Damaged(f"{len(data)} bytes of pixel data, expected {expected}")
            else:  # not 1-bit grey: decode with Pillow and store the rows unfiltered (filter type 0)
                ink = _decode_with_pil(blob)
                if ink.shape != (ORIGINAL_SIZE, ORIGINAL_SIZE):
                    raise _Damaged(f"size {ink.shape[1]}x{ink.shape[0]}, expected 105x105")
                data = np.pad(np.packbits(~ink, axis=1), ((0, 0), (1, 0))).tobytes()
            raw.append(data)
        except (_Damaged, zlib.error) as err:
            raise _damaged(where, str(err), member=name) from err
    rows = np.frombuffer(b"".join(raw), np.uint8).reshape(len(raw), ORIGINAL_SIZE, 1 + _ROW_BYTES)
    bad = np.flatnonzero((rows[:, :, 0] > 4).any(1))
    if bad.size:
        raise _damaged(where, "unknown PNG filter type", member=names[bad[0]])
    return _unfilter(rows)


def decode_ink(blobs: Sequence[bytes], names: Sequence[str], where: str | Path) -> np.ndarray:
    """Ink masks (N, 105, 105) bool of Omniglot PNGs (ink = the black strokes).

    The official files are 1-bit grey, non-interlaced: they are inflated here and their scanline filters undone
    for all images at once (about ten times faster than Pillow one by one); any other PNG goes through Pillow.
    A file that cannot be decoded, or is not 105x105, raises an error naming ``where`` and the file.
    """
    packed = _decode_packed(blobs, names, where)  # (N, 105, 14)
    return np.unpackbits(packed, axis=2, count=ORIGINAL_SIZE) == 0  # (N, 105, 105)


# ------------------------------------------------------------------------------------------------ downsampling
def _area_weights(size: int) -> np.ndarray:
    """(size, 105) integer weights: W[i, j] = size x the overlap of output pixel i with input pixel j (in input
    pixels), so each row sums to 105 and W X W^T / 105^2 is the ink fraction of each output pixel."""
    i = np.arange(size)[:, None] * ORIGINAL_SIZE  # (size, 1) output edges, scaled by size
    j = np.arange(ORIGINAL_SIZE)[None, :] * size  # (1, 105) input edges, scaled by size
    return np.clip(np.minimum(i + ORIGINAL_SIZE, j + size) - np.maximum(i, j), 0, None).astype(np.float32)


def _area_sum(x: np.ndarray, block: np.ndarray) -> np.ndarray:
    """``x @ W.T`` along the last axis, W being ``block`` (s/g, 105/g) repeated g times on the diagonal."""
    out_len, in_len = block.shape
    groups = ORIGINAL_SIZE // in_len
    y = x.reshape(-1, in_len) @ block.T  # (rows * g, s/g)
    return y.reshape(*x.shape[:-1], groups * out_len)


def _downsample_packed(white: np.ndarray, size: int, binarize: bool) -> np.ndarray:
    """(N, 105, 14) packed rows (1 = white) -> (N, s, s) uint8 ink image, in cache-sized blocks.

    The area weights are periodic: with g = gcd(105, s), every 105/g input pixels map onto s/g output pixels
    (15 -> 4 at 28x28), so each pass is one small matrix product per period instead of a full (s, 105) one."""
    if size == ORIGINAL_SIZE:  # every pixel is all ink or all white
        return (np.unpackbits(white, axis=2, count=ORIGINAL_SIZE) == 0).astype(np.uint8) * np.uint8(255)
    g = math.gcd(ORIGINAL_SIZE, size)
    block = _area_weights(size)[: size // g, : ORIGINAL_SIZE // g]  # (s/g, 105/g) one period
    full = ORIGINAL_SIZE * ORIGINAL_SIZE  # ink fraction c = (full - white sum) / full
    out = np.empty((len(white), size, size), np.uint8)  # (N, s, s)
    with _one_blas_thread():
        for start in range(0, len(white), _BATCH):
            x = np.unpackbits(white[start : start + _BATCH], axis=2, count=ORIGINAL_SIZE)  # (b, 105, 105)
            rows = _area_sum(x.astype(np.float32), block)  # (b, 105, s) horizontal pass
            both = _area_sum(np.ascontiguousarray(rows.transpose(0, 2, 1)), block).transpose(
                0, 2, 1
            )  # (b, s, s)
            ink = full - both.astype(np.int64)  # (b, s, s) exact integers in [0, 105^2]
            out[start : start + _BATCH] = (
                np.where(4 * ink >= full, 255, 0) if binarize else (255 * ink + full // 2) // full
            )
    return out


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Run numpy's BLAS on one thread where threadpoolctl is installed (it comes with scikit-learn): these
    products are too thin to share, and waiting BLAS threads cost 3-10x the work on a busy 2-core machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def downsample(ink: np.ndarray, *, image_size: int = EMBEDDED_SIZE, binarize: bool = True) -> np.ndarray:
    """(N, 105, 105) bool ink masks -> (N, s, s) uint8 with s = ``image_size``, by exact area averaging.

    With ``c`` the ink fraction of an output pixel (the 105x105 image seen as unit squares): ``binarize`` gives
    255 where c >= 1/4 and 0 elsewhere; otherwise round(255 c). Exact: the weights are integers and the float32
    sums stay below 2^24, so the result depends neither on the BLAS nor on the block size.
    """
    size = check_int(image_size, "image_size", 1, maximum=ORIGINAL_SIZE)
    check_flag(binarize, "binarize")
    ink = np.asarray(ink)
    if ink.dtype != bool or ink.ndim != 3 or ink.shape[1:] != (ORIGINAL_SIZE, ORIGINAL_SIZE):
        raise ValueError(f"ink must be a bool array (N, 105, 105); got {ink.dtype} {ink.shape}")
    return _downsample_packed(np.packbits(~ink, axis=2), size, binarize)

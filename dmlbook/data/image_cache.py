"""Decode every image of an :class:`~dmlbook.data.ImageDataset` once and keep it in memory as ``uint8``.

End-to-end training re-reads each image every epoch; decoding a JPEG with PIL costs about as much as the crop,
flip and resize that follow, and on a 2-core machine a loader process competes with the training step for the
same cores. :func:`cache_images` decodes each image once (optionally shrinking it so that its shorter side is at
most ``max_shorter_side``, never enlarging it) and stores it as a ``(3, H, W)`` ``uint8`` tensor; indexing then
runs only the dataset's transform, on that tensor (the transforms of :mod:`dmlbook.data.transforms` accept
``uint8`` tensors and keep their dtype until :class:`~dmlbook.data.transforms.ToTensor`).

Memory: ``3 * H * W`` bytes per image, e.g. about 73 kB for a 128 x 190 Cars196-half image (300 MB for its
4,052 training images). When the stored image already has the shorter side that the evaluation transform resizes
to, the cached and the uncached evaluation inputs are identical; random crops are resized by torch instead of
PIL (both bilinear, antialiased), so augmented training inputs differ from the uncached ones by rounding only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .dataset import ImageDataset


def _to_uint8(image: Any) -> Tensor:
    arr = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()  # (3, H, W)


class CachedImages(ImageDataset):
    """An :class:`ImageDataset` whose images were decoded once into memory (built by :func:`cache_images`).

    Behaves as the dataset it was made from (labels, classes, ``subset``, ``transform``); ``_load(i)`` returns
    the stored ``(3, H, W)`` ``uint8`` tensor instead of opening the file. Without a transform, ``dataset[i]``
    gives the image as float32 in [0, 1].
    """

    images: list[Tensor]
    max_shorter_side: int | None

    def _load(self, i: int) -> Tensor:
        return self.images[i]  # (3, H, W) uint8

    def _take(self, idx: np.ndarray) -> dict[str, Any]:
        return {"paths": self.paths[idx], "images": [self.images[int(j)] for j in idx]}

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        if self.transform is None:
            return self.images[int(i)].float().div_(255), int(self.labels[i])  # (3, H, W) in [0, 1]
        return super().__getitem__(i)

    def nbytes(self) -> int:
        """Bytes held by the decoded images."""
        return sum(t.numel() for t in self.images)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", cached={self.nbytes() / 2**20:.0f} MiB)"


def cache_images(
    dataset: ImageDataset, *, max_shorter_side: int | None = None, progress: bool = False
) -> CachedImages:
    """Decode every image of ``dataset`` once; see the module docstring.

    Args:
        dataset: an :class:`ImageDataset` (a :class:`CachedImages` is returned unchanged when its
            ``max_shorter_side`` is the same).
        max_shorter_side: shrink images whose shorter side is longer than this (bilinear, antialiased, keeping
            the aspect ratio); ``None`` keeps every image at its decoded size. Images are never enlarged.
        progress: show a tqdm progress bar.

    Returns:
        a :class:`CachedImages` with the same samples, labels, classes, meta and transform.
    """
    if not isinstance(dataset, ImageDataset):
        raise TypeError(
            f"dataset must be an ImageDataset (images decoded from files); got {type(dataset).__name__}"
        )
    if max_shorter_side is not None and (
        isinstance(max_shorter_side, bool) or not isinstance(max_shorter_side, int) or max_shorter_side < 1
    ):
        raise ValueError(f"max_shorter_side must be a positive int or None; got {max_shorter_side!r}")
    if isinstance(dataset, CachedImages) and dataset.max_shorter_side == max_shorter_side:
        return dataset
    from .transforms import ResizeShorter, image_size

    shrink = ResizeShorter(max_shorter_side) if max_shorter_side is not None else None
    indices = range(len(dataset))
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"decoding {dataset.name or 'images'} ({dataset.split})", leave=False)
    images = []
    for i in indices:
        image = dataset._load(i)  # a PIL image (RGB), or a uint8 tensor when re-caching a CachedImages
        if shrink is not None and min(image_size(image)) > max_shorter_side:
            image = shrink(image)
        images.append(image if isinstance(image, Tensor) else _to_uint8(image))  # (3, H, W) uint8
    out = CachedImages.__new__(CachedImages)
    out.__dict__.update(dataset.__dict__)
    out.images, out.max_shorter_side = images, max_shorter_side
    return out


__all__ = ["CachedImages", "cache_images"]

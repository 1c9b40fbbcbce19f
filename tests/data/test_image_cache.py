"""Decoded-image cache: same samples as the files, no disk reads after caching, identical evaluation inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from support import write_image_folder

from dmlbook.data import DMLDataset, load_dataset
from dmlbook.data import transforms as T
from dmlbook.data.image_cache import CachedImages, cache_images


@pytest.fixture
def tree(tmp_path):
    """4 classes x 3 JPEGs of different sizes (shorter sides 30 .. 52) in a folder-per-class layout."""
    rng = np.random.default_rng(0)
    return write_image_folder(
        tmp_path / "tree",
        lambda k, j: rng.integers(0, 256, size=(30 + 2 * (3 * k + j), 44 + k, 3), dtype=np.uint8),
        classes=4,
        per_class=3,
    )


def _all(tree):
    return load_dataset("folder", root=tree, split="all")


def test_cached_images_equal_decoded_files(tree):
    ds = _all(tree)
    ds.transform = None
    cached = cache_images(ds)
    assert isinstance(cached, CachedImages) and len(cached) == len(ds) == 12
    np.testing.assert_array_equal(cached.labels, ds.labels)
    for i in range(len(ds)):
        with Image.open(ds.paths[i]) as im:
            pixels = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)  # (3, H, W)
        assert cached.images[i].dtype == torch.uint8 and torch.equal(cached.images[i], pixels)
        x, y = cached[i]
        assert y == int(ds.labels[i]) and x.dtype == torch.float32
        torch.testing.assert_close(x, pixels.float() / 255)
    assert cached.nbytes() == sum(int(np.prod(t.shape)) for t in cached.images)


def test_no_disk_reads_after_caching(tree):
    cached = cache_images(_all(tree))
    for path in tree.rglob("*.jpg"):
        path.unlink()
    x, _ = cached[5]  # the default (ImageNet, 224 px) evaluation transform, on the stored tensor
    assert x.shape == (3, 224, 224)
    with pytest.raises(FileNotFoundError):
        _all(tree)[5]  # the uncached dataset does need the files


@pytest.mark.parametrize("size", [24, 40])
def test_eval_inputs_identical_to_uncached(tree, size):
    ds = _all(tree)
    ds.transform = T.eval_transform(size, mean=T.TF_MEAN, std=T.TF_STD)
    resize_to = round(size * 8 / 7)
    cached = cache_images(ds, max_shorter_side=resize_to)  # as train() caches
    for i in range(len(ds)):
        if min(cached.images[i].shape[1:]) == resize_to:  # shrunk by PIL as the uncached path does: identical
            torch.testing.assert_close(cached[i][0], ds[i][0], rtol=0, atol=1e-6)
        else:  # enlarged by torch instead of PIL (size 40: shorter sides 30 .. 44 < 46): one grey level at most
            assert (cached[i][0] - ds[i][0]).abs().max() <= 2 / 255 + 1e-6


def test_shrinks_but_never_enlarges(tree):
    cached = cache_images(_all(tree), max_shorter_side=36)
    shorter = [min(t.shape[1:]) for t in cached.images]
    assert max(shorter) == 36 and min(shorter) == 30  # 30 .. 34 kept, 36 .. 52 shrunk to 36
    assert cached.max_shorter_side == 36
    assert cache_images(cached, max_shorter_side=36) is cached


def test_subset_keeps_images_aligned(tree):
    cached = cache_images(_all(tree))
    idx = np.array([7, 2, 11])
    sub = cached.subset(idx, relabel=True)
    assert isinstance(sub, CachedImages) and len(sub.images) == 3
    for j, i in enumerate(idx):
        assert sub.images[j] is cached.images[i] and sub.paths[j] == cached.paths[i]
        torch.testing.assert_close(sub[j][0], cached[i][0])


def test_random_transforms_run_on_uint8(tree):
    cached = cache_images(_all(tree))
    cached.transform = T.train_transform(20, mean=T.TF_MEAN, std=T.TF_STD, scale=(0.5, 1.0))
    torch.manual_seed(0)
    a = cached[3][0]
    torch.manual_seed(0)
    assert torch.equal(a, cached[3][0]) and a.shape == (3, 20, 20) and -1 <= a.min() and a.max() <= 1


def test_bad_arguments(tree):
    with pytest.raises(TypeError, match="ImageDataset"):
        cache_images(DMLDataset(torch.zeros(4, 2), [0, 0, 1, 1]))
    with pytest.raises(ValueError, match="max_shorter_side"):
        cache_images(_all(tree), max_shorter_side=0)


def test_uint8_resize_keeps_dtype():
    x = torch.arange(48, dtype=torch.uint8).reshape(3, 4, 4) * 5
    y = T.resize(x, (8, 8))
    assert y.dtype == torch.uint8 and y.shape == (3, 8, 8)
    expected = T.resize(x.float(), (8, 8)).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(y, expected)
    assert torch.equal(T.resize(x, (4, 4)), x)  # same size: unchanged
    assert torch.equal(T.ToTensor()(y), y.float() / 255)

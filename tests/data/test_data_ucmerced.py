"""UC Merced features (``ucmerced_features``) and the stratified per-class sample split, on fabricated files and,
when present, the real ``$DMLBOOK_DATA/ucmerced16``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dmlbook.data import DMLDataset, PKSampler, dataset_info, load_dataset
from dmlbook.data.splits import stratified_mask, stratified_split

CLASSES = ["agricultural", "airplane", "beach", "harbor"]


@pytest.fixture
def fake_ucm(tmp_path: Path) -> Path:
    """A ucmerced16-like folder: features_mobilenet.npz with 4 classes x 10 rows (labels in labels.csv order)."""
    root = tmp_path / "ucmerced16"
    root.mkdir()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    fnames = np.asarray(
        [f"{CLASSES[c]}/{CLASSES[c]}{i:02d}.jpg" for c, i in zip(labels, np.tile(np.arange(10), 4))]
    )
    arrays = {
        "labels": labels,
        "fnames": fnames,
        "mobilenet_v2_1.0_224_quant": rng.standard_normal((40, 6)).astype(np.float32) + labels[:, None],
        "mobilenet_v1_1.0_224_quant_emb": rng.standard_normal((40, 3)).astype(np.float32),
    }
    np.savez(root / "features_mobilenet.npz", **arrays)
    return root


def test_info():
    info = dataset_info("ucmerced_features")
    assert info.input_kind == "features" and info.num_classes == 16 and info.input_shape == (1280,)
    assert "ucmerced16" in info.folders and info.needs_folder


def test_class_disjoint_protocol(fake_ucm):
    ds = load_dataset("ucmerced_features", root=fake_ucm, split="all")
    assert tuple(ds.data.shape) == (40, 6) and ds.class_names == CLASSES  # v2 pooled features by default
    train = load_dataset("ucmerced_features", root=fake_ucm, split="train", val_fraction=0)
    test = load_dataset("ucmerced_features", root=fake_ucm, split="test")
    assert train.class_names == CLASSES[:2] and test.class_names == CLASSES[2:]
    assert len(train) == 20 and len(test) == 20
    v1 = load_dataset("ucmerced_features", root=fake_ucm, split="all", key="mobilenet_v1_1.0_224_quant_emb")
    assert tuple(v1.data.shape) == (40, 3)
    one = load_dataset("ucmerced_features", root=fake_ucm, split="test", train_classes=3)
    assert one.class_names == CLASSES[3:]


def test_scenes_protocol(fake_ucm):
    kw = {"root": fake_ucm, "protocol": "scenes", "test_fraction": 0.3, "seed": 5}
    train = load_dataset("ucmerced_features", split="train", val_fraction=0, **kw)
    test = load_dataset("ucmerced_features", split="test", **kw)
    np.testing.assert_array_equal(test.class_counts(), [3, 3, 3, 3])
    np.testing.assert_array_equal(train.class_counts(), [7, 7, 7, 7])
    assert train.class_names == test.class_names == CLASSES
    # no image is on both sides, and together they are the whole set
    rows = {tuple(r.tolist()) for r in train.data} | {tuple(r.tolist()) for r in test.data}
    assert len(rows) == 40 and not {tuple(r.tolist()) for r in train.data} & {
        tuple(r.tolist()) for r in test.data
    }
    # the same seed gives the same split; the registry's seed= reaches the loader
    again = load_dataset("ucmerced_features", split="test", **kw)
    assert torch.equal(again.data, test.data)
    other = load_dataset("ucmerced_features", split="test", **{**kw, "seed": 6})
    assert not torch.equal(other.data, test.data)
    # validation comes out of the training images
    val = load_dataset("ucmerced_features", split="val", val_fraction=0.25, **kw)
    assert len(val) == 7 and val.num_classes <= 4


def test_protocol_errors(fake_ucm):
    with pytest.raises(ValueError, match="protocol must be one of 'classes', 'scenes'"):
        load_dataset("ucmerced_features", root=fake_ucm, split="all", protocol="images")
    with pytest.raises(ValueError, match="train_classes is for protocol='classes'"):
        load_dataset("ucmerced_features", root=fake_ucm, split="all", protocol="scenes", train_classes=2)


def test_stratified_mask_counts_and_seed():
    labels = np.repeat([0, 1, 2, 3], [10, 5, 2, 1])
    train = stratified_mask(labels, test_fraction=0.2, seed=0)
    test_counts = np.bincount(labels[~train], minlength=4)
    np.testing.assert_array_equal(test_counts, [2, 1, 1, 0])  # round(0.2 n), >= 1, never the whole class
    assert np.array_equal(stratified_mask(labels, test_fraction=0.2, seed=0), train)
    draws = {tuple(np.flatnonzero(~stratified_mask(labels, test_fraction=0.2, seed=s))) for s in range(6)}
    assert len(draws) > 1
    assert stratified_mask(labels, test_fraction=0.0).all()
    np.testing.assert_array_equal(
        np.bincount(labels[~stratified_mask(labels, test_fraction=0.9)], minlength=4), [9, 4, 1, 0]
    )


@pytest.mark.parametrize(
    "labels, fraction, error, match",
    [
        ([0, 0, 1, 1], 1.0, ValueError, "test_fraction must be < 1"),
        ([0, 0, 1, 1], -0.1, ValueError, r"test_fraction must be in \[0, 1\]"),
        ([0.0, 1.0], 0.2, TypeError, "labels must be a 1-D integer array"),
        ([[0, 1]], 0.2, TypeError, "labels must be a 1-D integer array"),
    ],
)
def test_stratified_mask_errors(labels, fraction, error, match):
    with pytest.raises(error, match=match):
        stratified_mask(np.asarray(labels), test_fraction=fraction)


def test_stratified_split_keeps_the_label_space():
    labels = np.repeat([0, 1, 2], [6, 1, 5])  # class 1 has one sample: it stays on the train side only
    ds = DMLDataset(
        torch.arange(12.0)[:, None], labels, class_ids=np.array([10, 20, 30]), class_names=["a", "b", "c"]
    )
    train, test = stratified_split(ds, test_fraction=0.4, seed=1)
    assert (train.split, test.split) == ("train", "test")
    assert train.num_classes == test.num_classes == 3 and test.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=3), [2, 0, 2])
    assert sorted(train.data[:, 0].tolist() + test.data[:, 0].tolist()) == list(range(12))


@pytest.mark.realdata
def test_ucmerced_features_real(real_data):
    if not (real_data / "ucmerced16" / "features_mobilenet.npz").is_file():
        pytest.skip(f"{real_data / 'ucmerced16'} is missing")
    ds = load_dataset("ucmerced_features", split="all")
    assert tuple(ds.data.shape) == (640, 1280) and ds.num_classes == 16
    images = load_dataset("folder", split="all")  # the folder loader's sorted class order is the npz's
    assert ds.class_names == images.class_names
    np.testing.assert_array_equal(ds.labels, images.labels)
    test = load_dataset("ucmerced_features", split="test", protocol="scenes", seed=3)
    np.testing.assert_array_equal(test.class_counts(), np.full(16, 8))  # 20 % of 40 images per class
    train = load_dataset("ucmerced_features", split="train", protocol="scenes", seed=3, val_fraction=0)
    assert len(train) == 512 and train.class_names == ds.class_names
    assert len(list(iter(PKSampler(train.labels, p=16, k=4)))) == 8

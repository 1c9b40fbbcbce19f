"""Real datasets under $DMLBOOK_DATA (CI: /work/shared/data); skipped when absent."""

from pathlib import Path

import numpy as np
import pytest
import torch

from dmlbook.data import PKSampler, load_dataset
from dmlbook.data._tables import load_mat_struct
from dmlbook.data.fashion_mnist import read_fashion_mnist

pytestmark = pytest.mark.realdata


def _folder(base: Path, name: str) -> Path:
    if not (base / name).is_dir():
        pytest.skip(f"{base / name} is missing")
    return base / name


def test_fashion_mnist_real(real_data):
    parts = read_fashion_mnist(_folder(real_data, "fashion_mnist"))
    assert parts["train"][0].shape == (60000, 28, 28) and parts["test"][0].shape == (10000, 28, 28)
    assert parts["train"][0].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(parts["train"][1]), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(parts["test"][1]), np.full(10, 1000))
    tr = load_dataset("fashion_mnist", split="train", val_fraction=0)
    te = load_dataset("fashion_mnist", split="test")
    assert len(tr) == len(te) == 35000 and te.class_names == [
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ]
    assert len(load_dataset("fashion_mnist", split="train", protocol="images", val_fraction=0)) == 60000


def test_cars196_half_real(real_data):
    root = _folder(real_data, "cars196_half")
    all_ = load_dataset("cars196", split="all")
    assert len(all_) == 8144 and all_.num_classes == 196
    assert len(root.joinpath("labels.csv").read_text().splitlines()) == 8145  # header + 8,144 rows
    tr = load_dataset("cars196", split="train", val_fraction=0)
    te = load_dataset("cars196", split="test")
    assert (len(tr), len(te)) == (4052, 4092) and te.class_ids[0] == 99
    counts = all_.class_counts()
    assert counts.min() == 24 and counts.max() == 68
    x, _ = te[0]
    assert x.shape == (3, 224, 224) and torch.isfinite(x).all()
    val = load_dataset("cars196", split="val")
    assert val.num_classes == 20 and not set(val.class_ids) & set(
        load_dataset("cars196", split="train").class_ids
    )
    sampler = PKSampler(tr, p=32, k=4, seed=0)
    assert len(sampler) == 4052 // 128


def test_cars_devkit_real_matches_fabricated_structure(real_data, tmp_path, fakes):
    """The fabricated .mat in conftest mirrors the real devkit struct (field names, 1 x N layout)."""
    import scipy.io as sio

    real = _folder(real_data, "cars196_half") / "devkit" / "cars_train_annos.mat"
    real_struct = sio.loadmat(str(real))["annotations"]
    fakes.write_cars_mat(tmp_path / "fake.mat", [(1, "00001.jpg"), (2, "00002.jpg")])
    fake_struct = sio.loadmat(str(tmp_path / "fake.mat"))["annotations"]
    assert real_struct.dtype.names == fake_struct.dtype.names == fakes.CARS_FIELDS
    assert real_struct.shape == (1, 8144) and fake_struct.shape == (1, 2)
    fields = load_mat_struct(real, "annotations")
    assert (
        len(fields["fname"]) == 8144 and fields["fname"][0] == "00001.jpg" and int(fields["class"][0]) == 14
    )
    # the devkit agrees with labels.csv
    ds = load_dataset("cars196", split="all")
    np.testing.assert_array_equal(ds.class_ids[ds.labels], np.asarray(fields["class"], dtype=np.int64))


def test_cars196_features_real(real_data):
    _folder(real_data, "cars196_half")
    all_ = load_dataset("cars196_features", split="all")
    assert tuple(all_.data.shape) == (8144, 1024) and all_.data.dtype == torch.float32
    tr = load_dataset("cars196_features", split="train", val_fraction=0)
    te = load_dataset("cars196_features", split="test")
    assert (len(tr), len(te)) == (4052, 4092)
    v2 = load_dataset("cars196_features", split="all", key="mobilenet_v2_1.0_224_quant")
    assert tuple(v2.data.shape) == (8144, 1280)
    assert list(all_.meta["fnames"][:2]) == ["00001.jpg", "00002.jpg"]


def test_ucmerced_folder_and_features_real(real_data):
    root = _folder(real_data, "ucmerced16")
    ds = load_dataset("folder", split="all")
    assert len(ds) == 640 and ds.num_classes == 16 and ds.class_names[0] == "agricultural"
    np.testing.assert_array_equal(ds.class_counts(), np.full(16, 40))
    assert load_dataset("folder", split="test").class_names[0] == ds.class_names[8]
    feats = load_dataset("features", root=root, split="all", key="mobilenet_v1_1.0_224_quant_emb")
    assert tuple(feats.data.shape) == (640, 1024)
    # the npz rows follow labels.csv, whose labels are the sorted class order used by the folder loader
    np.testing.assert_array_equal(feats.labels, ds.labels)

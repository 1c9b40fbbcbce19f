import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dmlbook.data import DMLDataset, SplitSource, apply_split, carve_val_classes, load_dataset


def _toy(n_classes=10, per=3):
    labels = np.repeat(np.arange(100, 100 + n_classes), per)
    x = torch.arange(len(labels) * 2, dtype=torch.float32).reshape(-1, 2)
    return DMLDataset(
        x, labels, class_names=[f"c{i}" for i in range(n_classes)], meta={"row": np.arange(len(labels))}
    )


def test_dataset_basics():
    ds = _toy()
    assert len(ds) == 30 and ds.num_classes == 10 and ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.class_ids, np.arange(100, 110))
    x, y = ds[4]
    assert torch.equal(x, torch.tensor([8.0, 9.0])) and y == 1
    np.testing.assert_array_equal(ds.class_counts(), np.full(10, 3))
    xb, yb = next(iter(DataLoader(ds, batch_size=30)))
    assert xb.shape == (30, 2) and yb.dtype == torch.int64
    x_all, y_all = ds.as_tensors()
    assert x_all.shape == (30, 2) and torch.equal(y_all, torch.from_numpy(ds.labels))


def test_uint8_data_is_scaled_and_transform_applied():
    ds = DMLDataset(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8), [0, 1], transform=lambda t: t * 2)
    x, _ = ds[0]
    assert x.dtype == torch.float32 and torch.allclose(x, torch.full((1, 2, 2), 2.0))


def test_subset_keeps_or_relabels():
    ds = _toy()
    sub = ds.subset([6, 7, 27])
    np.testing.assert_array_equal(sub.labels, [2, 2, 9])
    assert sub.num_classes == 10 and list(sub.meta["row"]) == [6, 7, 27]
    rel = ds.subset(np.array([6, 7, 27]), relabel=True)
    np.testing.assert_array_equal(rel.labels, [0, 0, 1])
    assert rel.class_names == ["c2", "c9"] and list(rel.class_ids) == [102, 109]
    assert torch.equal(rel[2][0], ds[27][0])
    mask = np.zeros(30, bool)
    mask[:3] = True
    assert len(ds.subset(mask)) == 3


@pytest.mark.parametrize(
    "bad, err",
    [
        ({"data": torch.zeros(3, 2), "labels": [0, 1]}, ValueError),
        ({"data": np.zeros((2, 2)), "labels": [0, 1]}, TypeError),
        ({"data": torch.zeros(2, 2), "labels": [0.5, 1.0]}, TypeError),
        ({"data": torch.zeros(2, 2), "labels": [0, 3], "class_ids": [7, 8]}, ValueError),
        ({"data": torch.zeros(2, 2), "labels": [0, 1], "class_names": ["a"]}, ValueError),
    ],
)
def test_dataset_errors(bad, err):
    with pytest.raises(err):
        DMLDataset(bad.pop("data"), bad.pop("labels"), **bad)


def test_subset_errors():
    ds = _toy()
    with pytest.raises(ValueError, match="indices"):
        ds.subset([0, 99])
    with pytest.raises(TypeError, match="indices"):
        ds.subset([0.5])


def test_carve_val_classes_seeded_disjoint():
    train, val = carve_val_classes(np.arange(1, 99), val_fraction=0.2, seed=0)
    assert len(val) == 20 and len(train) == 78 and not set(train) & set(val)
    assert set(train) | set(val) == set(range(1, 99))
    assert np.array_equal(val, carve_val_classes(np.arange(1, 99), val_fraction=0.2, seed=0)[1])
    assert not np.array_equal(val, carve_val_classes(np.arange(1, 99), val_fraction=0.2, seed=1)[1])
    assert len(carve_val_classes([1, 2, 3], val_fraction=0.01)[1]) == 1  # at least one class
    assert len(carve_val_classes([1, 2, 3], val_fraction=0.0)[1]) == 0
    with pytest.raises(ValueError, match="no training classes"):
        carve_val_classes([1, 2], val_fraction=0.9)
    with pytest.raises(ValueError, match="val_fraction"):
        carve_val_classes([1, 2], val_fraction=1.5)


def test_apply_split_class_disjoint():
    ds = _toy(10, 3)
    src = SplitSource(ds, ds.class_ids[ds.labels] < 106)  # 6 train classes, 4 test
    tr = apply_split(src, "train", val_fraction=0.34, seed=0)
    va = apply_split(src, "val", val_fraction=0.34, seed=0)
    te = apply_split(src, "test")
    al = apply_split(src, "all")
    assert (tr.num_classes, va.num_classes, te.num_classes, al.num_classes) == (4, 2, 4, 10)
    assert not set(tr.class_ids) & set(va.class_ids) and set(te.class_ids) == {106, 107, 108, 109}
    for part in (tr, va, te):
        np.testing.assert_array_equal(np.unique(part.labels), np.arange(part.num_classes))
    assert len(tr) + len(va) + len(te) == len(al) == 30
    assert apply_split(src, "train", val_fraction=0).num_classes == 6
    with pytest.raises(ValueError, match="val_fraction"):
        apply_split(src, "val", val_fraction=0)
    with pytest.raises(ValueError, match="split"):
        apply_split(src, "validation")


def test_apply_split_by_sample():
    ds = _toy(3, 10)
    src = SplitSource(ds, np.arange(30) < 20, by_class=False)
    va = apply_split(src, "val", val_fraction=0.25, seed=0)
    tr = apply_split(src, "train", val_fraction=0.25, seed=0)
    assert len(va) == 5 and len(tr) == 15
    assert not set(va.meta["row"]) & set(tr.meta["row"]) and max(va.meta["row"]) < 20


def test_digits_class_disjoint():
    tr = load_dataset("digits", split="train", val_fraction=0)
    te = load_dataset("digits", split="test")
    assert tr.class_names == ["0", "1", "2", "3", "4"] and te.class_names == ["5", "6", "7", "8", "9"]
    assert len(tr) + len(te) == 1797
    x, _ = tr[0]
    assert x.shape == (1, 8, 8) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert load_dataset("digits", split="all").num_classes == 10


def test_first_classes_errors_name_the_dataset_and_the_class_count():
    from dmlbook.data.splits import first_classes

    one = DMLDataset(torch.zeros(3, 2), [5, 5, 5], name="tiny")
    with pytest.raises(
        ValueError, match="dataset 'tiny' has 1 class; a class-disjoint train/test split needs at least 2"
    ):
        first_classes(one)
    four = DMLDataset(torch.zeros(4, 2), [0, 1, 2, 3], name="four")
    with pytest.raises(
        ValueError, match=r"train_classes must be between 1 and 3 for dataset 'four' \(it has 4 classes"
    ):
        first_classes(four, 4)
    assert first_classes(four, 3).tolist() == [True, True, True, False]

import numpy as np
import pytest
import torch

from dmlbook.data import DMLDataset, SyntheticData, load_dataset, make_blobs, make_patterns, make_synthetic


def test_blobs_shapes_seed_and_ground_truth():
    d = make_blobs(5, 20, dim=3, spread=0.05, outlier_fraction=0.1, flip_fraction=0.2, seed=3)
    assert isinstance(d, SyntheticData) and d.x.shape == (100, 3) and d.x.dtype == torch.float32
    assert d.labels.dtype == np.int64 and len(d) == 100
    assert d.is_outlier.sum() == 10 and d.is_flipped.sum() == 20
    assert not (d.is_outlier & d.is_flipped).any()
    assert (d.labels[d.is_flipped] != d.true_labels[d.is_flipped]).all()
    assert (d.labels[~d.is_flipped] == d.true_labels[~d.is_flipped]).all()
    np.testing.assert_array_equal(d.corrupted, d.is_outlier | d.is_flipped)
    np.testing.assert_array_equal(d.true_labels, np.repeat(np.arange(5), 20))
    again = make_blobs(5, 20, dim=3, spread=0.05, outlier_fraction=0.1, flip_fraction=0.2, seed=3)
    assert torch.equal(d.x, again.x) and (d.labels == again.labels).all()
    assert not torch.equal(d.x, make_blobs(5, 20, dim=3, spread=0.05, seed=4).x)


def test_small_spread_makes_classes_trivially_separable():
    d = make_blobs(6, 30, dim=2, spread=0.02, seed=0)
    dist = torch.cdist(d.x, d.x)
    same = torch.from_numpy(d.labels[:, None] == d.labels[None, :])
    assert dist[same].max() < dist[~same].min()  # every positive closer than every negative
    wide = make_blobs(6, 30, dim=2, spread=1.0, seed=0)
    dist_w = torch.cdist(wide.x, wide.x)
    assert dist_w[same].max() > dist_w[~same].min()


def test_per_class_spread_and_centers():
    d = make_blobs(3, 200, dim=2, spread=[0.0, 0.1, 0.5], separation=2.0, seed=1)
    stds = [d.x[torch.from_numpy(d.labels == c)].std(0).mean().item() for c in range(3)]
    assert stds[0] == pytest.approx(0, abs=1e-6) and 0.07 < stds[1] < 0.13 and 0.4 < stds[2] < 0.6
    assert torch.allclose(d.centers.norm(dim=1), torch.full((3,), 2.0))


def test_patterns_pixel_variant():
    d = make_patterns(4, 10, size=12, spread=0.0, outlier_fraction=0.25, seed=0)
    assert d.x.shape == (40, 1, 12, 12) and float(d.x.min()) >= 0 and float(d.x.max()) <= 1
    clean = ~d.is_outlier
    # spread 0: every clean image equals its class prototype
    assert torch.allclose(d.x[torch.from_numpy(clean)], d.centers[d.true_labels[clean]], atol=1e-6)
    assert make_synthetic("patterns", n_classes=4, n_per_class=10, size=12, seed=0).x.shape == (40, 1, 12, 12)


def test_to_dataset_and_registry():
    d = make_blobs(4, 5, flip_fraction=0.25, seed=0)
    ds = d.to_dataset()
    assert isinstance(ds, DMLDataset) and ds.num_classes == 4 and len(ds) == 20
    assert ds.meta["is_flipped"].sum() == 5
    x, y = ds[0]
    assert x.shape == (2,) and isinstance(y, int)
    train = load_dataset("synthetic", split="train", n_classes=10, n_per_class=4, val_fraction=0.2)
    assert train.num_classes == 4 and len(train) == 16
    test = load_dataset("synthetic", split="test", n_classes=10, n_per_class=4)
    np.testing.assert_array_equal(test.class_ids, np.arange(5, 10))


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"outlier_fraction": 0.7, "flip_fraction": 0.5}, ValueError),
        ({"outlier_fraction": 1.5}, ValueError),
        ({"spread": -1.0}, ValueError),
        ({"spread": [0.1, 0.2]}, ValueError),
        ({"n_classes": 0}, ValueError),
        ({"n_per_class": 2.5}, TypeError),
    ],
)
def test_blobs_argument_errors(kwargs, err):
    with pytest.raises(err):
        make_blobs(**{"n_classes": 3, "n_per_class": 4, **kwargs})


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        make_synthetic("spirals")

import numpy as np
import pytest
import torch

from dmlbook.data import DMLDataset, corrupt, corrupted_mask, make_blobs


def _images(n_classes=4, per_class=25, dtype=torch.uint8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    if dtype == torch.uint8:
        x = torch.from_numpy(rng.integers(0, 256, (len(labels), 1, 6, 6), dtype=np.uint8))
    else:
        x = torch.from_numpy(rng.random((len(labels), 1, 6, 6))).to(dtype)
    return DMLDataset(
        x, labels, class_ids=np.arange(10, 10 + n_classes), meta={"file": np.arange(len(labels))}, name="toy"
    )


def test_counts_flags_and_labels():
    ds = _images()
    out = corrupt(ds, outlier_fraction=0.1, flip_fraction=0.2, seed=1)
    m = out.meta
    assert m["is_outlier"].sum() == 10 and m["is_flipped"].sum() == 20
    assert not (m["is_outlier"] & m["is_flipped"]).any()
    np.testing.assert_array_equal(m["true_labels"], ds.labels)
    assert (out.labels[m["is_flipped"]] != ds.labels[m["is_flipped"]]).all()
    assert (out.labels[~m["is_flipped"]] == ds.labels[~m["is_flipped"]]).all()
    assert set(out.labels.tolist()) <= set(ds.labels.tolist())
    np.testing.assert_array_equal(corrupted_mask(out), m["is_outlier"] | m["is_flipped"])
    # untouched samples keep their data; other meta follows; the class bookkeeping is unchanged
    clean = torch.from_numpy(~m["is_outlier"])
    assert torch.equal(out.data[clean], ds.data[clean])
    np.testing.assert_array_equal(out.meta["file"], ds.meta["file"])
    np.testing.assert_array_equal(out.class_ids, ds.class_ids)
    assert out.data.dtype == ds.data.dtype and out.data.shape == ds.data.shape


def test_input_is_not_modified_and_seed_reproducible():
    ds = _images()
    before_x, before_y = ds.data.clone(), ds.labels.copy()
    a = corrupt(ds, outlier_fraction=0.2, flip_fraction=0.2, seed=5)
    b = corrupt(ds, outlier_fraction=0.2, flip_fraction=0.2, seed=5)
    c = corrupt(ds, outlier_fraction=0.2, flip_fraction=0.2, seed=6)
    assert torch.equal(ds.data, before_x) and (ds.labels == before_y).all() and "is_outlier" not in ds.meta
    assert torch.equal(a.data, b.data) and (a.labels == b.labels).all()
    assert not (a.meta["is_outlier"] == c.meta["is_outlier"]).all()


def test_zero_noise_is_a_copy():
    ds = _images()
    out = corrupt(ds, seed=0)
    assert torch.equal(out.data, ds.data) and (out.labels == ds.labels).all()
    assert not out.meta["is_outlier"].any() and not out.meta["is_flipped"].any()
    assert out.data.data_ptr() != ds.data.data_ptr()


def test_flips_are_uniform_over_the_other_classes():
    ds = _images(n_classes=3, per_class=2000)
    out = corrupt(ds, flip_fraction=0.5, seed=0)
    flipped = out.meta["is_flipped"]
    for c in range(3):
        targets = out.labels[flipped & (ds.labels == c)]
        assert c not in targets
        counts = np.bincount(targets, minlength=3)
        others = [k for k in range(3) if k != c]
        assert abs(counts[others[0]] - counts[others[1]]) < 0.15 * counts[others].sum()


def test_flips_only_to_present_classes():
    ds = _images(n_classes=6).subset(np.flatnonzero(np.isin(np.repeat(np.arange(6), 25), [1, 4])))
    out = corrupt(ds, flip_fraction=0.5, seed=0)
    assert set(out.labels.tolist()) == {1, 4}


def test_shuffle_outliers_keep_values_but_lose_structure():
    ds = _images()
    out = corrupt(ds, outlier_fraction=0.2, seed=2, outliers="shuffle")
    idx = np.flatnonzero(out.meta["is_outlier"])
    for i in idx:
        a, b = ds.data[i].flatten(), out.data[i].flatten()
        assert torch.equal(a.sort().values, b.sort().values)  # the same values ...
    assert not torch.equal(ds.data[idx], out.data[idx])  # ... in another order
    assert (out.meta["outlier_source"] == -1).all() and (out.meta["outlier_class"] == -1).all()


def test_noise_outliers_lie_in_the_value_range():
    ds = _images(dtype=torch.float32)
    out = corrupt(ds, outlier_fraction=0.3, seed=0, outliers="noise")
    idx = torch.from_numpy(out.meta["is_outlier"])
    assert float(out.data[idx].min()) >= float(ds.data.min()) and float(out.data[idx].max()) <= float(
        ds.data.max()
    )
    assert out.data.dtype == torch.float32


def test_foreign_pool_outliers_come_from_the_pool_with_their_class():
    ds = _images(dtype=torch.uint8)
    pool = _images(n_classes=2, per_class=10, dtype=torch.uint8, seed=9)  # class ids 10, 11
    pool.class_ids = np.array([70, 71])
    out = corrupt(ds, outlier_fraction=0.15, seed=3, outliers=pool)
    idx = np.flatnonzero(out.meta["is_outlier"])
    src = out.meta["outlier_source"][idx]
    assert len(set(src.tolist())) == len(idx)  # without replacement while the pool lasts
    assert torch.equal(out.data[torch.from_numpy(idx)], pool.data[torch.from_numpy(src)])
    np.testing.assert_array_equal(out.meta["outlier_class"][idx], pool.class_ids[pool.labels[src]])
    assert (out.meta["outlier_source"][~out.meta["is_outlier"]] == -1).all()
    # outliers keep their slot's label (and it is their "true" label, as in make_blobs)
    np.testing.assert_array_equal(out.labels[idx], ds.labels[idx])


def test_pool_dtype_conversion_and_tensor_pool():
    ds = _images(dtype=torch.uint8)
    pool = torch.full((3, 1, 6, 6), 0.5)  # float images in [0, 1]
    out = corrupt(ds, outlier_fraction=0.1, seed=0, outliers=pool)  # 10 outliers from 3: with replacement
    idx = torch.from_numpy(out.meta["is_outlier"])
    assert out.data.dtype == torch.uint8 and (out.data[idx] == 128).all()
    assert (out.meta["outlier_class"][out.meta["is_outlier"]] == -1).all()
    feats = DMLDataset(torch.zeros(8, 5), np.arange(8) % 2)
    out = corrupt(feats, outlier_fraction=0.5, seed=0, outliers=torch.ones(4, 5, dtype=torch.float64))
    assert out.data.dtype == torch.float32 and out.data[torch.from_numpy(out.meta["is_outlier"])].eq(1).all()


def test_feature_vectors_and_synthetic_meta_compatible():
    blobs = make_blobs(4, 20, dim=8, seed=0).to_dataset()
    out = corrupt(blobs, outlier_fraction=0.1, flip_fraction=0.1, seed=0)
    assert out.data.shape == (80, 8) and corrupted_mask(out).sum() == 16


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"outlier_fraction": 0.7, "flip_fraction": 0.7}, ValueError, "must be <= 1"),
        ({"outlier_fraction": -0.1}, ValueError, "outlier_fraction"),
        ({"flip_fraction": 1.5}, ValueError, "flip_fraction"),
        ({"outlier_fraction": 0.1, "outliers": "blur"}, ValueError, "outliers must be one of"),
        ({"outlier_fraction": 0.1, "outliers": [1, 2]}, TypeError, "outliers must be"),
        ({"outlier_fraction": 0.1, "outliers": torch.zeros(3, 1, 5, 5)}, ValueError, "shape"),
        ({"outlier_fraction": 0.1, "outliers": torch.zeros(0, 1, 6, 6)}, ValueError, "empty"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        corrupt(_images(), **kwargs)


def test_needs_in_memory_data_and_two_classes():
    with pytest.raises(TypeError, match="in-memory"):
        corrupt(DMLDataset(None, [0, 1]), flip_fraction=0.5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        corrupt(DMLDataset(torch.zeros(4, 2), [0, 0, 0, 0]), flip_fraction=0.5)
    with pytest.raises(KeyError, match="corrupt"):
        corrupted_mask(_images())

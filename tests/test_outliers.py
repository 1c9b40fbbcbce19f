"""dmlbook.experiments.outliers: noise, attention read from the loss, detection scores and training under noise."""

import math

import numpy as np
import pytest
import torch

from dmlbook.data import DMLDataset, corrupt
from dmlbook.experiments import outliers
from dmlbook.losses import OSMCAALoss
from dmlbook.models import build_model
from dmlbook.train import TrainConfig, run


def test_noise_fractions():
    assert outliers.noise_fractions(0.4) == pytest.approx((0.2, 0.2))
    assert outliers.noise_fractions(0.4, 1.0) == pytest.approx((0.4, 0.0))
    assert outliers.noise_fractions(0.0, 0.3) == (0.0, 0.0)
    with pytest.raises(ValueError, match="rate"):
        outliers.noise_fractions(1.5)


def test_detection_auc_and_roc():
    corrupted = np.array([True, True, False, False, False])
    assert outliers.detection_auc([0.1, 0.2, 0.8, 0.9, 0.7], corrupted) == 1.0  # low attention = corrupted
    assert outliers.detection_auc([0.9, 0.8, 0.1, 0.2, 0.3], corrupted) == 0.0
    assert outliers.detection_auc([0.5] * 5, corrupted) == 0.5
    assert math.isnan(outliers.detection_auc([0.1, 0.2], [False, False]))
    assert math.isnan(outliers.detection_auc([0.1, 0.2], [True, True]))
    assert outliers.detection_auc([0.1, 0.9], [1, 0]) == 1.0  # 0/1 works too
    fpr, tpr = outliers.detection_roc([0.1, 0.2, 0.8, 0.9, 0.7], corrupted)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    with pytest.raises(ValueError, match="both"):
        outliers.detection_roc([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match="entries"):
        outliers.detection_auc([0.1, 0.2, 0.3], corrupted)
    with pytest.raises(ValueError, match="boolean"):
        outliers.detection_auc([0.1, 0.2], [2, 0])
    with pytest.raises(ValueError, match="NaN"):
        outliers.detection_auc([float("nan"), 0.2], [True, False])


def test_lowest_and_precision():
    a = np.array([0.5, 0.1, 0.9, 0.1, 0.3])
    np.testing.assert_array_equal(outliers.lowest_attention(a, 3), [1, 3, 4])  # ties by index
    assert len(outliers.lowest_attention(a, 10)) == 5 and len(outliers.lowest_attention(a, 0)) == 0
    with pytest.raises(ValueError, match="k must"):
        outliers.lowest_attention(a, -1)
    corrupted = np.array([False, True, False, False, True])
    assert outliers.precision_at_lowest(a, corrupted) == 0.5  # k = 2: samples 1 (corrupted) and 3 (clean)
    assert outliers.precision_at_lowest(a, corrupted, k=3) == pytest.approx(2 / 3)
    assert math.isnan(outliers.precision_at_lowest(a, np.zeros(5, bool)))


def _corrupted_toy():
    x = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 3)
    ds = DMLDataset(x, np.arange(40) % 4, class_names=["a", "b", "c", "d"])
    pool = DMLDataset(torch.full((5, 3), -1.0), [0] * 5, class_ids=[7], class_names=["bag"])
    return corrupt(ds, outlier_fraction=0.25, flip_fraction=0.25, outliers=pool, seed=0), pool


def test_kinds_report_and_captions():
    noisy, pool = _corrupted_toy()
    kinds = outliers.corruption_kinds(noisy)
    assert (
        (kinds == "outlier").sum() == 10
        and (kinds == "flipped").sum() == 10
        and (kinds == "clean").sum() == 20
    )
    attention = np.where(kinds == "clean", 0.9, np.where(kinds == "outlier", 0.1, 0.5))
    report = outliers.detection_report(attention, noisy)
    assert report["auc"] == 1.0 and report["auc_outliers"] == 1.0 and report["auc_flipped"] == 1.0
    assert report["precision"] == 1.0
    assert report["mean_clean"] == pytest.approx(0.9) and report["mean_outlier"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="entries"):
        outliers.detection_report(attention[:5], noisy)
    idx = [int(np.flatnonzero(kinds == k)[0]) for k in ("clean", "outlier", "flipped")]
    (clean, k0), (out, k1), (flip, k2) = outliers.sample_captions(noisy, idx, foreign=pool)
    assert (k0, k1, k2) == ("clean", "outlier", "flipped")
    assert clean.endswith("clean") and "is: bag (outlier)" in out and "(flipped)" in flip
    assert out.startswith("label: ") and outliers.sample_captions(noisy, idx[1:2])[0][0].endswith(
        "foreign (outlier)"
    )


def test_sample_attention_reads_the_loss_classifier():
    torch.manual_seed(0)
    ds = DMLDataset(torch.randn(30, 4), np.arange(30) % 3)
    model = build_model("linear", in_dim=4, embedding_dim=5)
    loss_fn = OSMCAALoss(num_classes=3, embedding_dim=5)
    a = outliers.sample_attention(model, loss_fn, ds, batch_size=7)
    assert a.shape == (30,) and np.all((a > 0) & (a < 1))
    with torch.no_grad():
        expected, _ = loss_fn.classifier(model(ds.data), torch.from_numpy(ds.labels))
    np.testing.assert_allclose(a, expected.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="no classifier"):
        outliers.sample_attention(model, OSMCAALoss(attention="none"), ds)


def test_foreign_split_digits():
    train, test, foreign = outliers.foreign_split("digits", [9], max_test=100, seed=0)
    assert train.num_classes == 5 and test.num_classes == 4 and len(test) == 100
    assert 9 not in train.class_ids and 9 not in test.class_ids
    assert set(foreign.class_ids[foreign.labels].tolist()) == {9} and len(foreign) > 150
    with pytest.raises(ValueError, match="not class ids"):
        outliers.foreign_split("digits", [42])


def test_train_noisy_tiny_run_is_paired_and_seeded():
    train, test, foreign = outliers.foreign_split("digits", [9], max_train=200, max_test=150, seed=0)
    noisy = corrupt(train, outlier_fraction=0.1, flip_fraction=0.1, outliers=foreign, seed=0)
    config = TrainConfig(dataset="digits", epochs=1, batches_per_epoch=3, progress=False, device="cpu")
    caa = outliers.train_noisy("osm_caa", noisy, test, config)
    assert caa.attention is not None and caa.attention.shape == (len(noisy),)
    assert 0 <= caa.recall_at_1 <= 1 and caa.loss_fn.attention == "prob" and len(caa.history) == 1
    plain = outliers.train_noisy("osm", noisy, test, config, loss_args={"lam": 0.7})
    assert plain.attention is None and plain.loss_fn.attention == "none" and plain.loss_fn.lam == 0.7
    again = outliers.train_noisy("osm", noisy, test, config, loss_args={"lam": 0.7})
    assert again.recall_at_1 == plain.recall_at_1  # same seed, same batches, same result
    det = outliers.train_noisy("osm_caa", noisy, test, config, loss_args={"attention": "gaussian"})
    assert det.loss_fn.attention == "gaussian" and det.attention.min() >= 0.3


def test_train_noisy_is_one_run_without_validation():
    train, test, foreign = outliers.foreign_split("digits", [9], max_train=200, max_test=150, seed=0)
    assert len(train) == 200 and len(test) == 150
    again = outliers.foreign_split("digits", [9], max_train=200, max_test=150, seed=0)
    assert (
        train.labels.tolist() == again[0].labels.tolist() and test.labels.tolist() == again[1].labels.tolist()
    )
    noisy = corrupt(train, flip_fraction=0.2, outliers=foreign, seed=1)
    config = TrainConfig(
        dataset="digits", epochs=2, batches_per_epoch=3, progress=False, device="cpu", loss_args={"lam": 0.6}
    )
    epochs = []
    noisy_run = outliers.train_noisy("osm_caa", noisy, test, config, device="cpu", on_epoch=epochs.append)
    reference = run(config, loss="osm_caa", val_fraction=0.0, splits=(noisy, None, test), nmi=False)
    assert noisy_run.recall_at_1 == reference.metrics["recall@1"]
    assert [e["epoch"] for e in epochs] == [1, 2] and noisy_run.history[-1]["loss"] == reference.history[-1][
        "loss"
    ]
    assert noisy_run.loss_fn.lam == 0.6  # the config's loss_args are kept
    attention = outliers.sample_attention(reference.model, reference.loss_fn, noisy)
    np.testing.assert_array_equal(noisy_run.attention, attention)

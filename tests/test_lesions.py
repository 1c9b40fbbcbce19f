"""The DeMAL-CNN chapter helpers (dmlbook.experiments.lesions): encoding, head, training one variant, diagnostic and
attention measures."""

import math

import numpy as np
import pytest
import torch

from dmlbook.data import DMLDataset, RandomDihedral, make_lesions
from dmlbook.experiments import lesions
from dmlbook.losses import HybridTripletLoss
from dmlbook.models import FrozenEncoder
from dmlbook.train import fit


def test_encode_in_batches_is_one_pass():
    enc = FrozenEncoder("pixels")
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    out = lesions.encode(enc, x, batch_size=2)
    assert out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out, enc(x))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        lesions.encode(enc, x, batch_size=0)


def test_default_stages_and_head():
    assert [lesions.default_stages(s) for s in (4, 7, 14, 28, 32, 48, 64, 56)] == [1, 1, 2, 3, 3, 3, 4, 4]
    head = lesions.build_head(64, 14, attention=True, embedding_dim=16, width=8)
    assert head.num_stages == 2 and head.attention_stages == (0, 1)
    assert head(torch.randn(3, 64, 14, 14)).shape == (3, 16)
    assert lesions.build_head(3, 32, attention=False).attention_stages == ()
    loss = lesions.build_hybrid_loss(2, 16, triplet_weight=0.0)
    assert (
        isinstance(loss, HybridTripletLoss) and loss.triplet_weight == 0 and loss.classifier.num_classes == 2
    )


def test_binary_metrics_against_counts():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.2, 0.7, 0.4, 0.3, 0.1, 0.05])
    m = lesions.binary_metrics(y, s)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["balanced_accuracy"] == pytest.approx(
        (2 / 3 + 4 / 5) / 2
    )
    # AUC = share of (positive, negative) pairs ordered correctly
    pairs = [(a, b) for a in s[y == 1] for b in s[y == 0]]
    assert m["auc"] == pytest.approx(np.mean([a > b for a, b in pairs]))
    assert lesions.binary_metrics(y, s, threshold=0.65)["sensitivity"] == pytest.approx(1 / 3)
    assert math.isnan(lesions.binary_metrics(np.zeros(3, bool), np.ones(3))["auc"])
    with pytest.raises(ValueError, match="score has 2 entries"):
        lesions.binary_metrics(y, s[:2])
    with pytest.raises(ValueError, match="boolean"):
        lesions.binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))


def test_stratified_folds_partition():
    labels = np.array([0] * 20 + [1] * 5)
    folds = lesions.stratified_folds(labels, 5, seed=1)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(25))  # every sample tested exactly once
    for tr, te in folds:
        assert not set(tr) & set(te) and labels[te].sum() == 1 and len(te) == 5
    assert [te.tolist() for _, te in lesions.stratified_folds(labels, 5, seed=1)] == [
        te.tolist() for _, te in folds
    ]
    with pytest.raises(ValueError, match="folds must be"):
        lesions.stratified_folds(labels, 1)


def test_train_variant_predict_and_attention(one_thread):
    ds = make_lesions((24, 12), size=32, seed=0)
    feats = lesions.encode(FrozenEncoder("pixels"), ds.data)
    config = lesions.train_config(epochs=2, batch_k=8, seed=3)
    run = lesions.train_variant(
        feats, ds.labels, attention=True, triplet_weight=1.0, config=config, embedding_dim=8, width=4
    )
    assert len(run.history) == 2 and all(np.isfinite(h["loss"]) for h in run.history)
    assert run.loss_fn.triplet_weight == 1.0 and run.model.attention_stages == (0, 1, 2)
    p = lesions.predict_proba(run, feats)
    assert p.shape == (36, 2) and np.allclose(p.sum(1), 1, atol=1e-6)
    # the same seed gives the same initial head and batches: identical results
    again = lesions.train_variant(
        feats, ds.labels, attention=True, triplet_weight=1.0, config=config, embedding_dim=8, width=4
    )
    np.testing.assert_allclose(lesions.predict_proba(again, feats), p, rtol=1e-5, atol=1e-6)
    # run() trains exactly what seeding, building the head and the loss, and fit() on the features did
    torch.manual_seed(config.seed)
    head = lesions.build_head(feats.shape[1], feats.shape[-1], attention=True, embedding_dim=8, width=4)
    loss = lesions.build_hybrid_loss(2, 8)
    train_set = DMLDataset(feats, ds.labels, class_ids=np.arange(2), transform=RandomDihedral())
    fit(head, loss, train_set, config=config)
    for name, value in head.state_dict().items():
        torch.testing.assert_close(run.model.state_dict()[name], value, rtol=0, atol=0)
    masks = torch.as_tensor(ds.meta["mask"])
    report = lesions.attention_report(run.model, feats, masks)
    assert report["maps"].shape == (36, 32, 32) and report["in_mask"].shape == (36,)
    assert report["in_mask_mean"] == pytest.approx(float(report["in_mask"].mean()), rel=1e-6)
    assert 0 <= report["hit_rate"] <= 1
    torch.testing.assert_close(report["maps"].sum(dim=(1, 2)), torch.ones(36))
    base = lesions.baseline_report(masks)
    assert base["uniform"]["in_mask_mean"] == pytest.approx(masks.float().mean().item(), rel=1e-6)
    assert base["centre"]["in_mask_mean"] > base["uniform"]["in_mask_mean"]
    with pytest.raises(ValueError, match="no MixedAttention block"):
        plain = lesions.train_variant(
            feats, ds.labels, attention=False, triplet_weight=0.0, config=config, embedding_dim=8, width=4
        )
        lesions.attention_report(plain.model, feats, masks)


def test_mean_std():
    assert lesions.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert lesions.mean_std([2.0, float("nan")]) == (2.0, 0.0)
    assert all(math.isnan(v) for v in lesions.mean_std([]))

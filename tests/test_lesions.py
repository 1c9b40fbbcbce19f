"""The DeMAL-CNN chapter helpers: frozen encoder, head, training one variant, diagnostic and attention measures."""
import math

import numpy as np
import pytest
import torch

from dmlbook import lesions
from dmlbook.data import make_lesions
from dmlbook.losses import HybridTripletLoss
from dmlbook.models.mobilenet import STAGES


def test_pixel_encoder_normalises_with_imagenet_statistics():
    enc = lesions.FrozenEncoder("pixels")
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406])[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[None, :, None, None]
    torch.testing.assert_close(enc(x), (x.float() / 255 - mean) / std)
    torch.testing.assert_close(enc(x.float() / 255), enc(x))  # float input in [0, 1] is the same image
    assert (enc.out_channels, enc.stride) == (3, 1)


@pytest.mark.parametrize("stage", [2, 4])
def test_mobilenet_encoder_is_a_frozen_trunk_prefix(stage, one_thread):
    torch.manual_seed(0)
    enc = lesions.FrozenEncoder("mobilenet_v2", stage=stage, pretrained=False)
    assert enc.out_channels == STAGES[stage][2] and enc.stride == STAGES[stage][3]
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training  # stays in eval mode (BatchNorm statistics frozen)
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = lesions.encode(enc, x, batch_size=1)
    assert out.shape == (2, enc.out_channels, 64 // enc.stride, 64 // enc.stride) and not out.requires_grad
    # the same as running the first blocks of the trunk on the normalised image
    expected = enc.trunk((x.float() / 255 - enc.mean) / enc.std)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="stage must be an int in"):
        lesions.FrozenEncoder("mobilenet_v2", stage=9, pretrained=False)
    with pytest.raises(ValueError, match="backbone must be one of"):
        lesions.FrozenEncoder("resnet50")


def test_default_stages_and_head():
    assert [lesions.default_stages(s) for s in (4, 7, 14, 28, 32, 48, 64, 56)] == [1, 1, 2, 3, 3, 3, 4, 4]
    head = lesions.build_head(64, 14, attention=True, embedding_dim=16, width=8)
    assert head.num_stages == 2 and head.attention_stages == (0, 1)
    assert head(torch.randn(3, 64, 14, 14)).shape == (3, 16)
    assert lesions.build_head(3, 32, attention=False).attention_stages == ()
    loss = lesions.build_hybrid_loss(2, 16, triplet_weight=0.0)
    assert isinstance(loss, HybridTripletLoss) and loss.triplet_weight == 0 and loss.classifier.num_classes == 2


def test_binary_metrics_against_counts():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.2, 0.7, 0.4, 0.3, 0.1, 0.05])
    m = lesions.binary_metrics(y, s)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(6 / 8) and m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
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
    assert [te.tolist() for _, te in lesions.stratified_folds(labels, 5, seed=1)] == [te.tolist() for _, te in folds]
    with pytest.raises(ValueError, match="folds must be"):
        lesions.stratified_folds(labels, 1)


def test_train_variant_predict_and_attention(one_thread):
    ds = make_lesions((24, 12), size=32, seed=0)
    feats = lesions.encode(lesions.FrozenEncoder("pixels"), ds.data)
    config = lesions.train_config(epochs=2, batch_k=8, seed=3)
    run = lesions.train_variant(feats, ds.labels, attention=True, triplet_weight=1.0, config=config,
                                embedding_dim=8, width=4)
    assert len(run.history) == 2 and all(np.isfinite(h["loss"]) for h in run.history)
    assert run.loss_fn.triplet_weight == 1.0 and run.model.attention_stages == (0, 1, 2)
    p = lesions.predict_proba(run, feats)
    assert p.shape == (36, 2) and np.allclose(p.sum(1), 1, atol=1e-6)
    # the same seed gives the same initial head and batches: identical results
    again = lesions.train_variant(feats, ds.labels, attention=True, triplet_weight=1.0, config=config,
                                  embedding_dim=8, width=4)
    np.testing.assert_allclose(lesions.predict_proba(again, feats), p, rtol=1e-5, atol=1e-6)
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
        plain = lesions.train_variant(feats, ds.labels, attention=False, triplet_weight=0.0, config=config,
                                      embedding_dim=8, width=4)
        lesions.attention_report(plain.model, feats, masks)


def test_mean_std():
    assert lesions.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert lesions.mean_std([2.0, float("nan")]) == (2.0, 0.0)
    assert all(math.isnan(v) for v in lesions.mean_std([]))

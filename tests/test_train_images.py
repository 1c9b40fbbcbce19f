"""End-to-end training on images: transforms that follow the weights, slower backbone, one real step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support import noisy_grey, write_image_folder
from torch import nn

from dmlbook.data import load_dataset
from dmlbook.train import TrainConfig, make_optimizer, set_image_transforms, train


@pytest.fixture
def scenes(tmp_path):
    rng = np.random.default_rng(0)
    return write_image_folder(
        tmp_path / "scenes", lambda k, j: noisy_grey(rng, 40 * k, 20, (40, 48)), classes=6, per_class=4
    )


class _TFModel(nn.Module):
    weights_format = "tf"


def test_transforms_follow_the_weights(scenes):
    config = TrainConfig(dataset="folder", data_root=str(scenes), image_size=32).resolved()
    train_set = load_dataset("folder", root=scenes, split="train")
    test_set = load_dataset("folder", root=scenes, split="test")
    set_image_transforms(_TFModel(), [train_set, test_set], config)
    x, _ = test_set[0]
    assert x.shape == (3, 32, 32) and x.min() >= -1 and x.max() <= 1 and x.min() < 0  # [-1, 1] inputs
    set_image_transforms(nn.Linear(1, 1), [test_set], config)  # ImageNet mean/std otherwise
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = test_set[0][0] * std[:, None, None] + mean[:, None, None]  # back to [0, 1]
    torch.testing.assert_close(pixels * 2 - 1, x, atol=1e-5, rtol=0)


def test_backbone_learning_rate_factor():
    model = nn.Sequential()
    model.add_module("trunk", nn.Linear(4, 4))
    model.add_module("embedding", nn.Linear(4, 2))
    config = TrainConfig(lr=1e-3, backbone_lr_mult=0.1).resolved()
    groups = make_optimizer(model, nn.Module(), config).param_groups
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    assert groups[0]["params"][0] is model.embedding.weight


def test_cars196_end_to_end_recipe_is_the_default_and_stays_with_its_model():
    recipe = TrainConfig(dataset="cars196", loss="osm_caa").resolved()
    assert (recipe.model, recipe.image_size, recipe.model_args) == ("mobilenet_v2", 224, {"frozen_stages": 5})
    assert (recipe.embedding_dim, recipe.batch_p, recipe.batch_k) == (512, 16, 4)
    assert (recipe.head_warmup_epochs, recipe.head_warmup_lr, recipe.crop_scale_min) == (20, 1e-4, 0.5)
    assert recipe.loss_args == {"lam": 0.9, "detach_classifier": True}
    mine = TrainConfig(
        dataset="cars196", head_warmup_epochs=0, crop_scale_min=0.2, model_args={"frozen_stages": 2}
    ).resolved()
    assert (mine.head_warmup_epochs, mine.crop_scale_min, mine.model_args) == (0, 0.2, {"frozen_stages": 2})
    other = TrainConfig(dataset="cars196", model="small_cnn").resolved()  # the backbone recipe does not apply
    assert (other.model_args, other.head_warmup_epochs) == ({}, 0)
    assert TrainConfig(dataset="synthetic").resolved().head_warmup_epochs == 0
    with pytest.raises(ValueError, match="crop_scale_min"):
        TrainConfig(dataset="cars196", crop_scale_min=1.5).resolved()


def test_mobilenet_trains_end_to_end_on_a_folder(scenes, tmp_path):
    result = train(
        TrainConfig(
            dataset="folder",
            data_root=str(scenes),
            loss="osm_caa",
            model="mobilenet_v2",
            pretrained="none",
            image_size=32,
            epochs=1,
            batches_per_epoch=1,
            batch_p=2,
            batch_k=2,
            val_fraction=0.0,
            num_workers=0,
            embedding_dim=8,
            progress=False,
            out=str(tmp_path / "out"),
        )
    )
    assert 0 <= result.metrics["recall@1"] <= 1
    assert result.metrics["config"]["model"] == "mobilenet_v2"


def test_pretrained_for_a_feature_model_is_an_error():
    with pytest.raises(ValueError, match="pretrained"):
        train(TrainConfig(dataset="synthetic", pretrained="default", epochs=1, progress=False))


# --- OSM + CAA with the classifier on the pooled backbone features; head warm-up; cache; frozen stages ---------
def _reference_pooled_caa(emb, feats, labels, weight, bias, **kw):
    """Loop reference: a_i = softmax(W f_i + b)[y_i], L = OSM+CAA(e, y; a) + mean_i -log a_i."""
    from tests.dml_reference import osm_caa

    attention, ce = [], 0.0
    for i in range(len(labels)):
        logits = weight @ feats[i] + bias  # (C,)
        log_p = logits - torch.logsumexp(logits, 0)
        attention.append(log_p[labels[i]].exp())
        ce = ce - log_p[labels[i]] / len(labels)
    return osm_caa(emb, labels, attention, **kw) + ce


@pytest.mark.parametrize("detach", [False, True])
def test_pooled_feature_caa_matches_reference(detach):
    from dmlbook.losses import build_loss
    from dmlbook.train import PooledFeatureCAA

    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    emb = torch.randn(8, 5, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.rand(8, 6, generator=g, dtype=torch.float64, requires_grad=True)
    loss_fn = PooledFeatureCAA(build_loss("osm_caa", lam=0.7), 6, 3, detach_features=detach).double()
    value = loss_fn(emb, labels, features=feats)
    w, b = loss_fn.classifier.weight.detach(), loss_fn.classifier.bias.detach()
    ref_feats = feats.detach() if detach else feats
    reference = _reference_pooled_caa(emb, ref_feats, labels, w, b, lam=0.7)
    torch.testing.assert_close(value, reference, rtol=1e-10, atol=1e-12)
    ge, gf = torch.autograd.grad(value, (emb, feats), allow_unused=True)
    re, rf = torch.autograd.grad(reference, (emb, feats), allow_unused=True)
    torch.testing.assert_close(ge, re, rtol=1e-8, atol=1e-12)
    if detach:
        assert gf is None and rf is None  # the cross-entropy does not reach the backbone
    else:
        assert gf is not None and gf.abs().sum() > 0
        torch.testing.assert_close(gf, rf, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="features must have shape"):
        loss_fn(emb, labels, features=feats[:, :4])


def test_build_loss_for_puts_the_caa_classifier_on_pooled_features():
    from dmlbook.losses.osm_caa import OSMCAALoss
    from dmlbook.models import MobileNetV2
    from dmlbook.train import PooledFeatureCAA, build_loss_for

    config = TrainConfig(
        dataset="folder",
        loss="osm_caa",
        model="mobilenet_v2",
        embedding_dim=8,
        loss_args={"detach_classifier": True},
    ).resolved()
    loss_fn = build_loss_for(config, 5, MobileNetV2(8))
    assert isinstance(loss_fn, PooledFeatureCAA) and loss_fn.detach_features
    assert loss_fn.classifier.in_features == 1280 and loss_fn.classifier.out_features == 5
    assert loss_fn.metric.classifier is None
    own = build_loss_for(dataclasses_replace(config, caa_on_features=False), 5, MobileNetV2(8))
    assert isinstance(own, OSMCAALoss) and own.classifier is not None  # the classifier on the embeddings
    features = TrainConfig(dataset="synthetic", loss="osm_caa", caa_on_features=True).resolved()
    with pytest.raises(ValueError, match="caa_on_features"):
        build_loss_for(features, 5, nn.Linear(4, 2))


def dataclasses_replace(config, **kw):
    import dataclasses

    return dataclasses.replace(config, **kw)


@pytest.fixture
def scenes10(tmp_path):
    rng = np.random.default_rng(1)
    return write_image_folder(
        tmp_path / "scenes10", lambda k, j: noisy_grey(rng, 25 * k, 20, (36, 44)), classes=10, per_class=4
    )


def test_warmup_cache_and_frozen_stages_end_to_end(scenes10, tmp_path):
    from dmlbook.models import MobileNetV2
    from dmlbook.train import PooledFeatureCAA

    torch.manual_seed(3)
    weights = MobileNetV2(weights_format="tf").imagenet_state_dict()  # a stand-in for the ImageNet file
    torch.save(weights, tmp_path / "weights.pt")
    config = TrainConfig(
        dataset="folder",
        data_root=str(scenes10),
        loss="osm_caa",
        model="mobilenet_v2",
        pretrained=str(tmp_path / "weights.pt"),
        image_size=32,
        epochs=2,
        batches_per_epoch=2,
        batch_p=2,
        batch_k=2,
        val_fraction=0.4,
        num_workers=0,
        embedding_dim=8,
        progress=False,
        cache_images=True,
        head_warmup_epochs=3,
        model_args={"frozen_stages": 4},
        out=str(tmp_path / "out"),
    )
    seen = []
    result = train(config, on_step=lambda info: seen.append(info.step))
    m = result.metrics
    assert seen == [0, 1, 2, 3]  # 2 epochs x 2 end-to-end steps (the warm-up has its own loop)
    assert m["warmup_seconds"] > 0 and m["seconds"] >= m["warmup_seconds"] and m["cache_seconds"] > 0
    assert 0 <= m["warmup_val_recall@1"] <= 1
    assert (tmp_path / "out" / "warmup_history.json").is_file()
    assert isinstance(result.loss_fn, PooledFeatureCAA)
    trained = result.model.imagenet_state_dict()
    for name, value in weights.items():
        block = int(name.split(".")[1]) if name.startswith("features.") else None
        if block is not None and block < 7:
            assert torch.equal(trained[name], value), (
                name
            )  # frozen stages (0-3: blocks 0-6) keep their weights
        elif block is not None and name.endswith("weight"):
            assert not torch.equal(trained[name], value), name  # the later stages were fine-tuned
    assert result.model.weights_format == "tf"


def test_cached_and_uncached_runs_see_the_same_evaluation_inputs(scenes):
    from dmlbook.data.image_cache import cache_images

    config = TrainConfig(dataset="folder", data_root=str(scenes), image_size=32).resolved()
    test_set = load_dataset("folder", root=scenes, split="test")
    set_image_transforms(_TFModel(), [test_set], config)
    cached = cache_images(test_set, max_shorter_side=round(32 * 8 / 7))
    for i in range(len(test_set)):
        torch.testing.assert_close(cached[i][0], test_set[i][0], rtol=0, atol=1e-6)

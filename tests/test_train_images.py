"""End-to-end training on images: transforms that follow the weights, slower backbone, one real step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dmlbook.data import load_dataset
from dmlbook.train import TrainConfig, make_optimizer, set_image_transforms, train


@pytest.fixture
def scenes(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(6):
        for j in range(4):
            folder = tmp_path / "scenes" / "images" / f"class{k}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(rng.normal(40 * k, 20, size=(40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{j}.jpg")
    return tmp_path / "scenes"


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


def test_mobilenet_trains_end_to_end_on_a_folder(scenes, tmp_path):
    result = train(TrainConfig(dataset="folder", data_root=str(scenes), loss="osm_caa", model="mobilenet_v2",
                               pretrained="none", image_size=32, epochs=1, batches_per_epoch=1, batch_p=2,
                               batch_k=2, val_fraction=0.0, num_workers=0, embedding_dim=8, progress=False,
                               out=str(tmp_path / "out")))
    assert 0 <= result.metrics["recall@1"] <= 1
    assert result.metrics["config"]["model"] == "mobilenet_v2"


def test_pretrained_for_a_feature_model_is_an_error():
    with pytest.raises(ValueError, match="pretrained"):
        train(TrainConfig(dataset="synthetic", pretrained="default", epochs=1, progress=False))

"""The Omniglot recipe (issue 15): its defaults resolve, the stroke jitter is seeded and training-only, and a
two-step run works on the embedded copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlbook.data.transforms import RandomAffine
from dmlbook.train import DATASET_DEFAULTS, TrainConfig, run


@pytest.mark.parametrize("dataset", ["omniglot", "omniglot_embedded"])
def test_defaults_resolve(dataset: str) -> None:
    cfg = TrainConfig(dataset=dataset, loss="triplet").resolved()
    recipe = DATASET_DEFAULTS[dataset]
    assert cfg.model == "small_cnn" == recipe["model"]
    assert cfg.embedding_dim == recipe["embedding_dim"]
    assert (cfg.batch_p, cfg.batch_k) == (recipe["batch_p"], recipe["batch_k"])
    assert cfg.batch_p >= 16  # many classes per batch: the point of the recipe
    assert cfg.batches_per_epoch * cfg.epochs == recipe["batches_per_epoch"] * recipe["epochs"]
    assert cfg.schedule == "cosine" and 0 < cfg.val_fraction < 1
    assert cfg.model_args["image_size"] == 28


def test_both_datasets_share_one_recipe() -> None:
    assert DATASET_DEFAULTS["omniglot"] == DATASET_DEFAULTS["omniglot_embedded"]


def test_another_model_drops_the_recipe_model_args() -> None:
    cfg = TrainConfig(dataset="omniglot_embedded", loss="triplet", model="mlp").resolved()
    assert "width" not in cfg.model_args


def _strokes(n: int = 6) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)  # (B, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0
    x[:, :, 12:15, 6:22] = 1.0
    return x


def test_affine_is_seeded_and_per_image() -> None:
    x = _strokes()
    aug = RandomAffine(degrees=10, translate=0.1, scale=(0.9, 1.1), shear=10)
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    b = aug(x)
    assert torch.equal(a, b)
    c = aug(x, generator=torch.Generator().manual_seed(3))
    d = aug(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(c, d)
    torch.manual_seed(4)
    assert not torch.equal(a, aug(x))
    diffs = (a - a[:1]).flatten(1).abs().sum(1)  # (B,): each image gets its own draw
    assert bool((diffs[1:] > 0).all())
    assert a.shape == x.shape and not torch.equal(a, x)


def test_affine_identity_keeps_dtype_and_pixels() -> None:
    x = _strokes()
    assert torch.allclose(RandomAffine(p=0.0)(x), x, atol=1e-5)
    u8 = (x * 255).to(torch.uint8)
    out = RandomAffine(degrees=0, translate=0, scale=(1, 1), shear=0)(u8)
    assert out.dtype == torch.uint8 and torch.equal(out, u8)
    assert RandomAffine()(x[0]).shape == x[0].shape  # one image (C, H, W)


def test_affine_pure_shift_has_identity_matrix_and_bounded_shift() -> None:
    # rotation, shear and scale off: the linear part is the identity, the shift at most 2 x 0.2 in [-1, 1]
    aug = RandomAffine(degrees=0, translate=0.2, scale=(1, 1), shear=0)
    theta = aug.matrices(1, generator=torch.Generator().manual_seed(0))  # (1, 2, 3)
    assert torch.allclose(theta[0, :, :2], torch.eye(2))
    assert float(theta[0, :, 2].abs().max()) <= 0.4 + 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"degrees": -1},
        {"translate": 1.0},
        {"scale": (0.0, 1.0)},
        {"scale": (1.2, 1.1)},
        {"shear": 90},
        {"p": 1.5},
    ],
)
def test_affine_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RandomAffine(**kwargs)


def test_affine_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="tensor"):
        RandomAffine()(np.zeros((1, 28, 28)))
    with pytest.raises(ValueError, match="shape"):
        RandomAffine()(torch.zeros(28, 28))


def test_two_step_run_trains_only_on_augmented_batches() -> None:
    cfg = TrainConfig(
        dataset="omniglot_embedded",
        loss="triplet",
        epochs=1,
        batches_per_epoch=2,
        batch_p=8,
        batch_k=2,
        device="cpu",
        progress=False,
        seed=0,
    )
    from dmlbook.train import load_splits, subsample

    resolved = cfg.resolved()
    train, val, test = load_splits(resolved)
    val, test = subsample(val, 300, seed=0), subsample(test, 300, seed=0)
    before = test.data.clone()
    result = run(cfg, splits=(train, val, test), nmi=False)
    assert result.metrics["epochs"] == 1 and 0 <= result.metrics["recall@1"] <= 1
    assert result.test_embeddings.shape == (300, resolved.embedding_dim)
    assert torch.equal(test.data, before)  # evaluation images are never jittered

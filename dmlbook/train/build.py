"""Building a run's pieces from its config: the model, the loss and the image transforms."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from ..data import ImageDataset
from ..losses import LOSSES, build_loss
from ..losses.pooled_caa import PooledFeatureCAA
from ..models import build_model
from .config import TrainConfig


def _pooled_feature_dim(model: nn.Module) -> int | None:
    """The pooled-feature size of a model with ``forward(x, return_features=True)`` (None otherwise)."""
    dim = getattr(model, "feature_dim", None)
    has = "return_features" in inspect.signature(model.forward).parameters and hasattr(model, "features")
    return int(dim) if has and isinstance(dim, int) else None


def build_loss_for(config: TrainConfig, num_classes: int, model: nn.Module | None = None) -> nn.Module:
    """The configured loss. ``osm_caa`` gets a CAA classifier over the training classes by default: on the
    backbone's pooled features (:class:`~dmlbook.losses.pooled_caa.PooledFeatureCAA`) when ``model`` has them and
    ``caa_on_features`` is not False, else on the embeddings (the loss's own classifier)."""
    args = dict(config.loss_args)
    if config.loss == "osm_caa" and args.get("attention", "prob") != "none" and "num_classes" not in args:
        feature_dim = _pooled_feature_dim(model) if model is not None else None
        if config.caa_on_features is True and feature_dim is None:
            raise ValueError(
                f"caa_on_features=True needs a model with pooled features; {config.model!r} has none"
            )
        if feature_dim is not None and config.caa_on_features is not False:
            detach = bool(args.pop("detach_classifier", False))
            return PooledFeatureCAA(
                build_loss(config.loss, **args), feature_dim, num_classes, detach_features=detach
            )
        args.update(num_classes=num_classes, embedding_dim=config.embedding_dim)
    elif getattr(LOSSES.get(config.loss), "needs_classes", False) and "num_classes" not in args:
        args.update(
            num_classes=num_classes, embedding_dim=config.embedding_dim
        )  # centre, demal: own classifier
    return build_loss(config.loss, **args)


def build_model_for(config: TrainConfig, sample: Tensor) -> nn.Module:
    """The configured model for inputs shaped like ``sample`` (one x of the dataset)."""
    if sample.dim() == 1:
        if config.pretrained not in (None, "none"):
            raise ValueError(f"pretrained= is for image backbones; {config.model!r} takes feature vectors")
        return build_model(
            config.model, in_dim=sample.shape[0], embedding_dim=config.embedding_dim, **config.model_args
        )
    args = dict(config.model_args)
    if config.pretrained not in (None, "none"):
        args["pretrained"] = True if config.pretrained == "default" else config.pretrained
    return build_model(config.model, in_channels=sample.shape[0], embedding_dim=config.embedding_dim, **args)


def set_image_transforms(model: nn.Module, datasets: Sequence[Any], config: TrainConfig) -> None:
    """Give image datasets the augmentation (train) / centre crop (others) at ``image_size``, normalised the way
    the model's weights expect (``[-1, 1]`` for TensorFlow-format weights, ImageNet mean/std otherwise)."""
    for ds in datasets:
        if isinstance(ds, ImageDataset):
            ds.transform = image_transform(model, config, train=ds.split == "train", dataset=ds)


def image_size_for(config: TrainConfig, dataset: Any) -> int:
    """The crop size of a run: the config's, else the dataset's, else 224."""
    info = getattr(dataset, "info", None)
    return config.image_size or (info.image_size if info is not None else None) or 224


def image_transform(model: nn.Module, config: TrainConfig, *, train: bool, dataset: Any = None) -> Any:
    """The training augmentation (``train``) or the evaluation centre crop at the configured image size, with the
    normalisation that ``model``'s weights expect."""
    from ..data.transforms import (
        IMAGENET_MEAN,
        IMAGENET_STD,
        TF_MEAN,
        TF_STD,
        eval_transform,
        train_transform,
    )

    tf = getattr(model, "weights_format", None) == "tf"
    mean, std = (TF_MEAN, TF_STD) if tf else (IMAGENET_MEAN, IMAGENET_STD)
    size = image_size_for(config, dataset)
    if train:
        return train_transform(size, mean=mean, std=std, scale=(config.crop_scale_min, 1.0))
    return eval_transform(size, mean=mean, std=std)

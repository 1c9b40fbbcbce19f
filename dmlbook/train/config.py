"""What one run depends on: :class:`TrainConfig`, the per-dataset recipes and their resolution.

:meth:`TrainConfig.resolved` fills every ``None`` from the dataset's recipe (:data:`DATASET_DEFAULTS`) and its
:class:`~dmlbook.data.DatasetInfo`, and checks every name and number; a bad value raises :class:`ConfigError`
(a ``ValueError``) that names the field, so that the command line can name the flag.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from .._checks import check_choice, check_fraction, check_int, check_positive
from ..data import dataset_info, list_datasets
from ..losses import LOSSES
from ..models import available_models

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
DEVICES = ("auto", "cpu", "cuda")
METRIC_KEYS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi")

#: Fields that do not change what a run computes: a resumed run may change them (every other field must match
#: the checkpoint's).
NOT_RESULT_FIELDS = (
    "epochs",
    "progress",
    "out",
    "resume",
    "device",
    "num_workers",
    "eval_batch_size",
    "data_root",
    "cache_images",
    "channels_last",
)

#: Loss hyper-parameters chosen on the *validation* classes of the Cars196 features (see
#: ``benchmarks/cars196_features.py``): with a linear head on frozen features the paper's λ = 0.5 pulls positives
#: together so hard that the head overfits the training classes (test Recall@1 below the raw features), and the
#: CAA classifier's cross-entropy does the same; λ = 0.9 and a classifier that only *reads* the embeddings fix both.
_FROZEN_FEATURE_LOSS_ARGS: dict[str, dict[str, Any]] = {
    "osm": {"lam": 0.9},
    "osm_caa": {"lam": 0.9, "detach_classifier": True},
}

#: The entries of a dataset's defaults that belong to its default model (dropped when another model is chosen).
_MODEL_RECIPE = ("model_args", "head_warmup_epochs", "head_warmup_lr")

#: Per-dataset defaults that give a good run with ``--dataset X --loss Y`` alone. Anything not listed comes
#: from :class:`TrainConfig`; ``embedding_dim``, ``batch_p`` and ``batch_k`` come from the dataset's
#: :class:`~dmlbook.data.DatasetInfo` unless given here.
# Omniglot from pixels: the 3-stage SmallCNN at 28x28, 64-d, P x K = 32 x 4 (many classes, so many hard negatives
# per batch), 2,400 Adam steps at lr 1e-3 under the cosine schedule (12 epochs of 200 batches, about 5 minutes on
# 2 cores); 6 of the 30 background alphabets validate. A first setting, not yet tuned: batch-hard triplet reaches
# 78.3 validation / 75.1 test Recall@1 with it (seed 0); the stroke jitter (transforms.RandomAffine) still needs
# a hook in the training loop.
_OMNIGLOT: dict[str, Any] = {
    "model": "small_cnn",
    "model_args": {"width": 32, "image_size": 28},
    "embedding_dim": 64,
    "batch_p": 32,
    "batch_k": 4,
    "batches_per_epoch": 200,
    "epochs": 12,
    "lr": 1e-3,
    "val_fraction": 0.2,
    "num_workers": 0,
}

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "model": "mlp",
        "model_args": {"hidden_dims": (64,)},
        "epochs": 20,
        "lr": 1e-2,
        "val_fraction": 0.0,
    },
    "digits": {
        "model": "small_cnn",
        "model_args": {"width": 16, "image_size": 8},
        "epochs": 15,
        "lr": 3e-3,
        "val_fraction": 0.0,
    },
    "fashion_mnist": {
        "model": "small_cnn",
        "epochs": 3,
        "lr": 1e-3,
        "val_fraction": 0.0,
        "batches_per_epoch": 150,
    },
    "cars196_features": {
        "model": "linear",
        "embedding_dim": 512,
        "epochs": 60,
        "lr": 1e-4,
        "weight_decay": 1e-4,
        "patience": 10,
        "val_fraction": 0.2,
        "loss_args": _FROZEN_FEATURE_LOSS_ARGS,
    },
    "features": {
        "model": "linear",
        "embedding_dim": 512,
        "epochs": 60,
        "lr": 1e-4,
        "weight_decay": 1e-4,
        "patience": 10,
        "val_fraction": 0.2,
        "loss_args": _FROZEN_FEATURE_LOSS_ARGS,
    },
    # Cars196 images end to end (benchmarks/end_to_end.py, chosen on the validation classes on 2 CPU cores): the
    # 128-px images of cars196_half upscaled to 224 px (raw pooled features: Recall@1 40 at 224, 28 at 112), the
    # stem and rows 1-4 frozen, random crops of at least half the image, a 20-epoch head warm-up at lr 1e-4 (at 1e-3
    # the head overfits the training classes), the backbone at 0.3x the head's lr (1x first drops validation
    # Recall@1 by 3 points), and the frozen heads' OSM λ = 0.9 (with λ = 0.5 validation Recall@1 fell to 48.6
    # after 100 steps, against 60.5); 512-d embeddings as the frozen heads; the decoded images are cached in memory,
    # so no loader processes compete with the two cores
    "cars196": {
        "model": "mobilenet_v2",
        "pretrained": "default",
        "image_size": 224,
        "backbone_lr_mult": 0.3,
        "model_args": {"frozen_stages": 5},
        "crop_scale_min": 0.5,
        "head_warmup_epochs": 20,
        "head_warmup_lr": 1e-4,
        "embedding_dim": 512,
        "batch_p": 16,
        "batch_k": 4,
        "epochs": 30,
        "lr": 1e-4,
        "patience": 5,
        "val_fraction": 0.2,
        "num_workers": 0,
        "cache_images": True,
        "loss_args": _FROZEN_FEATURE_LOSS_ARGS,
    },
    "cub200": {
        "model": "mobilenet_v2",
        "pretrained": "default",
        "backbone_lr_mult": 0.1,
        "epochs": 30,
        "lr": 1e-4,
        "patience": 5,
        "val_fraction": 0.2,
        "num_workers": 2,
    },
    "sop": {
        "model": "mobilenet_v2",
        "pretrained": "default",
        "backbone_lr_mult": 0.1,
        "epochs": 30,
        "lr": 1e-4,
        "patience": 5,
        "val_fraction": 0.1,
        "num_workers": 2,
    },
    "folder": {
        "model": "mobilenet_v2",
        "pretrained": "default",
        "backbone_lr_mult": 0.1,
        "epochs": 30,
        "lr": 1e-4,
        "patience": 5,
        "val_fraction": 0.2,
        "num_workers": 2,
    },
    "omniglot": dict(_OMNIGLOT),
    "omniglot_embedded": dict(_OMNIGLOT),  # the same images, shipped in the package
    # UC Merced (16-class subset) frozen MobileNetV2 features: 8 training classes, 2 of them held out for validation
    "ucmerced_features": {
        "model": "linear",
        "embedding_dim": 128,
        "epochs": 60,
        "lr": 1e-4,
        "weight_decay": 1e-4,
        "patience": 10,
        "val_fraction": 0.25,
        "batch_p": 6,
        "loss_args": _FROZEN_FEATURE_LOSS_ARGS,
    },
}


class ConfigError(ValueError):
    """A bad :class:`TrainConfig` value; ``field`` names the attribute (the command line names its flag)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _checked(name: str, check: Any, *args: Any, **kwargs: Any) -> Any:
    """``check(*args, **kwargs)``, its TypeError/ValueError re-raised as a :class:`ConfigError` for ``name``."""
    try:
        return check(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err), field=name) from None


@dataclass
class TrainConfig:
    """Everything one run depends on (saved in ``metrics.json`` and the checkpoint). ``None`` means the dataset's
    default.

    Attributes:
        dataset: a registered dataset name (:func:`~dmlbook.data.list_datasets`).
        data_root: its folder (default ``$DMLBOOK_DATA/<name>``).
        data_args: extra loader arguments (e.g. ``{"key": ...}`` for features, ``{"kind": "patterns"}``).
        loss: a loss name (:data:`~dmlbook.losses.LOSSES`); ``loss_args``: its hyper-parameters.
        model: a model name (:func:`~dmlbook.models.available_models`); ``model_args``: its arguments.
        embedding_dim: output dimension.
        epochs: the most epochs to train; ``patience``: stop after this many epochs without a better
            validation Recall@1 (0 disables early stopping).
        batch_p, batch_k: P classes x K samples per batch (the global batch under torchrun; K >= 2, so that every
            batch has positive pairs).
        batches_per_epoch: batches in one epoch (default: enough to cover the training set once).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9); ``lr``, ``weight_decay``.
        loss_lr_mult: learning-rate factor for the loss's own parameters (a CAA classifier, centres, proxies):
            they train at ``lr * loss_lr_mult``. ``None`` (default): the loss's class attribute ``lr_mult``
            (1.0 when it has none), so that a loss whose proxies want a larger rate gets it without a flag.
        schedule: ``none``, ``cosine`` (per epoch, to 0 at ``epochs``) or ``step`` (x0.1 at 50 % and 75 %).
        val_fraction: share of the training classes held out for validation (0: no validation).
        seed: seeds data order, initialisation and the validation split.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; ``amp``: mixed precision (default: on
            CUDA only).
        out: output folder (``None``: nothing is written); ``resume``: continue from ``out/checkpoint.pt``.
        num_workers: data-loader processes for image datasets; ``eval_batch_size``: batch size when embedding.
        progress: show tqdm progress bars.
        pretrained: ImageNet weights for image backbones: a file, or ``"default"`` (the model's own default
            location, e.g. ``$DMLBOOK_DATA/weights/`` for ``mobilenet_v2``), or ``"none"`` (random initialisation).
        image_size: training/evaluation crop size for image datasets (default: the dataset's, 224).
        backbone_lr_mult: learning-rate factor for every model parameter outside its final ``embedding`` layer
            (end-to-end fine-tuning usually wants the pretrained backbone to move slower than the new head).
        channels_last: run image models in channels-last memory format (about 2x faster on CPU for MobileNetV2).
        cache_images: decode every image once into memory as uint8 (:func:`~dmlbook.data.image_cache.cache_images`,
            shorter side at most ``round(image_size * 8 / 7)``) instead of reading the JPEG files every epoch
            (default: the dataset's, on for Cars196; the memory is about 3 bytes per stored pixel).
        crop_scale_min: the smallest area fraction of the random resized crop of the training augmentation
            (default: the dataset's, else 0.08).
        head_warmup_epochs: before end-to-end training, train the embedding layer (and the loss's own classifier)
            on the frozen backbone's pooled features of centre-cropped training images for at most this many
            epochs, keeping the epoch with the best validation Recall@1 (0: no warm-up; image backbones only;
            default: the dataset's, else 0).
        head_warmup_lr: learning rate of that warm-up (default: the dataset's, else 1e-3).
        caa_on_features: for ``osm_caa`` on an image backbone, compute the class-aware attention from a classifier
            on the backbone's pooled features (:class:`~dmlbook.losses.pooled_caa.PooledFeatureCAA`, the paper's
            layout) instead of one on the embeddings (default: on whenever the model has pooled features).
    """

    dataset: str = "synthetic"
    loss: str = "contrastive"
    data_root: str | None = None
    data_args: dict[str, Any] = field(default_factory=dict)
    loss_args: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int | None = None
    epochs: int | None = None
    patience: int | None = None
    batch_p: int | None = None
    batch_k: int | None = None
    batches_per_epoch: int | None = None
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float | None = None
    loss_lr_mult: float | None = None
    schedule: str = "cosine"
    val_fraction: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    out: str | None = None
    resume: bool = False
    num_workers: int | None = None
    eval_batch_size: int = 512
    progress: bool = True
    pretrained: str | None = None
    image_size: int | None = None
    backbone_lr_mult: float | None = None
    channels_last: bool = True
    cache_images: bool | None = None
    crop_scale_min: float | None = None
    head_warmup_epochs: int | None = None
    head_warmup_lr: float | None = None
    caa_on_features: bool | None = None

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` replaced by the dataset's default; validates names and numbers.

        Raises :class:`ConfigError` (a ValueError) naming the field for a bad name or number.
        """
        for name, choices in (
            ("dataset", list_datasets()),
            ("loss", LOSSES),
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("device", DEVICES),
        ):
            _checked(name, check_choice, getattr(self, name), choices, name)
        info = dataset_info(self.dataset)
        dataset_defaults = DATASET_DEFAULTS.get(info.name, {})
        if self.model not in (
            None,
            dataset_defaults.get("model"),
        ):  # the recipe for the dataset's model stays with it
            dataset_defaults = {k: v for k, v in dataset_defaults.items() if k not in _MODEL_RECIPE}
        defaults: dict[str, Any] = {
            "embedding_dim": info.embedding_dim,
            "batch_p": info.batch_p,
            "batch_k": info.batch_k,
            "epochs": 10,
            "patience": 0,
            "lr": 1e-3,
            "backbone_lr_mult": 1.0,
            "weight_decay": 0.0,
            "val_fraction": 0.2,
            "num_workers": 0,
            "cache_images": False,
            "crop_scale_min": 0.08,
            "head_warmup_epochs": 0,
            "head_warmup_lr": 1e-3,
            **dataset_defaults,
        }
        out = dataclasses.replace(self, dataset=info.name)
        for name, value in defaults.items():
            if name == "model_args":
                out.model_args = {**value, **self.model_args}
            elif name == "loss_args":
                out.loss_args = {**value.get(out.loss, {}), **self.loss_args}
            elif getattr(out, name) is None:
                setattr(out, name, value)
        if out.model is None:
            out.model = "mlp"
        _checked("model", check_choice, out.model, available_models(), "model")
        out._check_numbers()
        check_loss_args(out.loss, out.loss_args)
        return out

    def _check_numbers(self) -> None:
        minimums = {
            "embedding_dim": 1,
            "epochs": 1,
            "batch_p": 1,
            "batch_k": 2,
            "eval_batch_size": 1,
            "patience": 0,
            "num_workers": 0,
            "seed": 0,
            "head_warmup_epochs": 0,
            "batches_per_epoch": 1,
            "image_size": 32,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if value is not None or name not in ("batches_per_epoch", "image_size"):
                _checked(name, check_int, value, name, minimum)  # batch_k >= 2: a batch needs positive pairs
        for name in ("lr", "backbone_lr_mult", "head_warmup_lr", "crop_scale_min"):
            _checked(name, check_positive, getattr(self, name), name)
        if self.loss_lr_mult is not None:
            _checked("loss_lr_mult", check_positive, self.loss_lr_mult, "loss_lr_mult")
        _checked("weight_decay", check_positive, self.weight_decay, "weight_decay", allow_zero=True)
        _checked("val_fraction", check_fraction, self.val_fraction, "val_fraction")
        if not self.val_fraction < 1:
            raise ConfigError(
                f"val_fraction must be in [0, 1); got {self.val_fraction}", field="val_fraction"
            )
        if not self.crop_scale_min <= 1:
            raise ConfigError(
                f"crop_scale_min must be in (0, 1]; got {self.crop_scale_min!r}", field="crop_scale_min"
            )

    def result_fields(self) -> dict[str, Any]:
        """The fields that change what a run computes (all but :data:`NOT_RESULT_FIELDS`), JSON-style."""
        return {k: v for k, v in jsonable(dataclasses.asdict(self)).items() if k not in NOT_RESULT_FIELDS}


def check_loss_args(loss: str, args: dict[str, Any]) -> None:
    """Every key of ``args`` must be a constructor argument of the loss ``loss``."""
    accepted = [p for p in inspect.signature(LOSSES[loss]).parameters if p != "self"]
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown hyper-parameter(s) {unknown} for loss {loss!r}; it accepts: {', '.join(accepted)}",
            field="loss_args",
        )


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, keys as strings and anything unusual as its ``str`` (for JSON files)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; asking for ``cuda`` without a GPU is an error."""
    _checked("device", check_choice, device, DEVICES, "device")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device='cuda' was requested but torch.cuda.is_available() is False; use --device cpu",
            field="device",
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)

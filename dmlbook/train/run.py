"""One whole run: :func:`run` (seed, build, fit, embed, evaluate) and :func:`train` (``run`` + the run's files).

:func:`run` is the only place that turns a :class:`~dmlbook.train.config.TrainConfig` into a trained, measured
embedding; every chapter and benchmark calls it (or :func:`train`, which also writes ``OUT/``).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import distributed
from ..data import ImageDataset
from ..data.image_cache import cache_images as _cache_images
from ..evaluation import evaluate
from .build import build_loss_for, build_model_for, image_size_for, set_image_transforms
from .callbacks import Callback, CallbackList, LambdaCallback, RunContext
from .checkpoint import CHECKPOINT_NAME, check_resumable
from .config import METRIC_KEYS, ConfigError, TrainConfig, jsonable, resolve_device
from .data import embed, load_splits
from .files import OutputLock, prepare_output, write_json
from .loop import StepInfo, fit
from .warmup import warm_up_head


@dataclass
class Run:
    """What :func:`run` (and :func:`train`) return.

    Attributes:
        metrics: the test metrics and the run's facts, the keys of ``metrics.json``: ``recall@1 recall@2 recall@4
            recall@8 map@r r_precision nmi`` (None without a test split; ``nmi`` None with ``nmi=False``),
            ``val_recall@1 epochs best_epoch stopped_early seconds warmup_seconds warmup_val_recall@1
            cache_seconds train_samples test_samples world_size device config``. Empty on the processes other
            than rank 0 under torchrun.
        history: one record per epoch (``epoch loss val_recall@1 lr seconds``).
        model, loss_fn: the trained model (best weights) and loss.
        config: the resolved config (P clamped to the usable classes).
        test_embeddings, test_labels: the test split embedded by the final model, (N, D) and (N,) on the CPU
            (None without a test split, and off rank 0).
        train_embeddings, train_labels: the training split embedded by it, with ``embed_train=True`` (else None).
        warmup: the head warm-up's ``{"epochs", "best_epoch", "val_recall@1", "seconds", "history"}``, or None.
    """

    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    model: nn.Module
    loss_fn: nn.Module
    config: TrainConfig
    test_embeddings: Tensor | None = None
    test_labels: Tensor | None = None
    train_embeddings: Tensor | None = None
    train_labels: Tensor | None = None
    warmup: dict[str, Any] | None = None


#: The name :func:`train` has always returned; the same class.
TrainResult = Run


def _setup(config: TrainConfig) -> tuple[torch.device, distributed.DistInfo]:
    device = resolve_device(config.device)
    info = distributed.setup(device)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if info.enabled and config.batch_p % info.world_size:
        raise ConfigError(
            f"batch_p ({config.batch_p}) must be divisible by the number of processes ({info.world_size})",
            field="batch_p",
        )
    return device, info


def _check_splits(splits: Any) -> tuple[Any, Any | None, Any | None]:
    if not isinstance(splits, (tuple, list)) or len(splits) != 3:
        raise TypeError(
            "splits must be a (train, val or None, test or None) tuple of datasets; got "
            f"{type(splits).__name__}"
        )
    if splits[0] is None or not hasattr(splits[0], "labels"):
        raise TypeError("splits[0] must be the training dataset (with .labels)")
    return splits[0], splits[1], splits[2]


def run(
    config: TrainConfig | None = None,
    *,
    model: nn.Module | None = None,
    loss_fn: nn.Module | None = None,
    splits: tuple[Any, Any | None, Any | None] | None = None,
    callbacks: Sequence[Any] = (),
    embed_train: bool = False,
    nmi: bool = True,
    **overrides: Any,
) -> Run:
    """Train and measure one configuration; nothing is written to disk (:func:`train` writes ``OUT/``).

    In order: resolve ``config`` (``overrides`` replace its fields); load ``(train, val, test)`` (or take
    ``splits``); clamp P to the training classes with at least 2 samples (and say so on stderr when ``config.progress``; :func:`train` always says it); seed torch with
    ``config.seed``; build the model (or take ``model``), set the image transforms, cache images, build the loss
    (or take ``loss_fn``); warm up the head (``head_warmup_epochs``); call ``on_run_start``; :func:`fit` with
    early stopping on the validation classes; embed the test split with the best weights and
    :func:`~dmlbook.evaluation.evaluate` it; call ``on_run_end``.

    Args:
        config: the run's settings (default ``TrainConfig()``).
        model: a model to train instead of the configured one (used as it is: the caller seeds and builds it).
        loss_fn: a loss module to train with instead of the configured one (e.g. a synthesis wrapper); used as it
            is (its own parameters train at ``lr * loss_lr_mult``).
        splits: ``(train, val or None, test or None)`` datasets instead of :func:`load_splits` (e.g. a corrupted
            training set, or a test subset). Without a test split nothing is evaluated.
        callbacks: :class:`~dmlbook.train.callbacks.Callback` instances (or plain ``on_step`` functions).
        embed_train: also embed the training split with the final model (``Run.train_embeddings``).
        nmi: compute NMI (k-means; the slow part of the evaluation on large sets).
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides).resolved()
    device, info = _setup(config)
    return _run(
        config,
        device=device,
        info=info,
        model=model,
        loss_fn=loss_fn,
        splits=splits,
        callbacks=CallbackList(callbacks),
        embed_train=embed_train,
        nmi=nmi,
        checkpoint=None,
        announce=config.progress,  # a chapter's many quiet runs do not repeat it
    )


def _clamp_p(config: TrainConfig, train_set: Any, info: distributed.DistInfo, *, announce: bool) -> None:
    usable = int((train_set.class_counts() >= 2).sum())
    if config.batch_p > usable:  # fewer training classes than P: use them all (whole classes per process)
        wanted = config.batch_p
        config.batch_p = max(info.world_size, usable - usable % info.world_size)
        if info.is_main and announce:
            print(
                f"dmlbook train: batch_p {wanted} reduced to {config.batch_p}: the training split has {usable} "
                f"classes with at least 2 samples",
                file=sys.stderr,
            )


def _run(
    config: TrainConfig,
    *,
    device: torch.device,
    info: distributed.DistInfo,
    model: nn.Module | None,
    loss_fn: nn.Module | None,
    splits: Any,
    callbacks: CallbackList,
    embed_train: bool,
    nmi: bool,
    checkpoint: Path | None,
    announce: bool,
) -> Run:
    train_set, val_set, test_set = _check_splits(splits) if splits is not None else load_splits(config)
    _clamp_p(config, train_set, info, announce=announce)
    resuming = config.resume and checkpoint is not None and checkpoint.exists()
    if resuming and info.is_main:  # a damaged or foreign checkpoint is refused before anything is built
        check_resumable(checkpoint, config)
    torch.manual_seed(config.seed)
    images = isinstance(train_set, ImageDataset)
    if model is None:
        model = build_model_for(config, train_set[0][0])
    set_image_transforms(model, [d for d in (train_set, val_set, test_set) if d is not None], config)
    cache_seconds = 0.0
    if images and config.cache_images:
        started = time.perf_counter()
        shorter = round(image_size_for(config, train_set) * 8 / 7)  # the evaluation transform's resize
        train_set, val_set, test_set = (
            _cache_images(d, max_shorter_side=shorter, progress=config.progress and info.is_main)
            if isinstance(d, ImageDataset)
            else d
            for d in (train_set, val_set, test_set)
        )
        cache_seconds = time.perf_counter() - started
    if config.channels_last and images:
        model = model.to(memory_format=torch.channels_last)
    if loss_fn is None:
        loss_fn = build_loss_for(config, train_set.num_classes, model)
    warmup: dict[str, Any] | None = None
    if config.head_warmup_epochs and not resuming:
        if not images:
            raise ConfigError(
                "head_warmup_epochs is for image backbones (a feature model is its own head)",
                field="head_warmup_epochs",
            )
        torch.manual_seed(config.seed)
        warmup = warm_up_head(
            model, loss_fn, train_set, val_set if info.is_main else None, config=config, device=device
        )
    model.to(device)  # (fit does it too) so that on_run_start can embed on ctx.device
    loss_fn.to(device)
    callbacks.on_run_start(RunContext(config, model, loss_fn, train_set, val_set, test_set, device, info))
    fitted = fit(
        model,
        loss_fn,
        train_set,
        val_set=val_set,
        config=config,
        device=device,
        checkpoint=checkpoint,
        resume=config.resume and checkpoint is not None,
        on_step=callbacks.on_step,
        on_epoch=callbacks.on_epoch,
        dist_info=info,
    )
    result = Run({}, fitted.history, model, loss_fn, config, warmup=warmup)
    if info.is_main:

        def embed_set(dataset: Any) -> tuple[Tensor, Tensor]:
            return embed(
                model,
                dataset,
                device=device,
                batch_size=config.eval_batch_size,
                num_workers=config.num_workers,
            )

        scores: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
        if test_set is not None:
            result.test_embeddings, result.test_labels = embed_set(test_set)
            measured = evaluate(result.test_embeddings, result.test_labels, nmi=nmi, seed=config.seed)
            scores.update({k: v for k, v in measured.items() if k in METRIC_KEYS})
        if embed_train:
            result.train_embeddings, result.train_labels = embed_set(train_set)
        result.metrics = {
            **scores,
            "val_recall@1": fitted.best_val,
            "epochs": fitted.epochs,
            "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early,
            "seconds": round(fitted.seconds + (warmup["seconds"] if warmup else 0.0), 3),
            "warmup_seconds": warmup["seconds"] if warmup else 0.0,
            "warmup_val_recall@1": warmup["val_recall@1"] if warmup else None,
            "cache_seconds": round(cache_seconds, 3),
            "train_samples": len(train_set),
            "test_samples": len(test_set) if test_set is not None else 0,
            "world_size": info.world_size,
            "device": str(device),
            "config": jsonable(dataclasses.asdict(config)),
        }
    callbacks.on_run_end(result)
    return result


def train(
    config: TrainConfig | None = None,
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    callbacks: Sequence[Any] = (),
    **overrides: Any,
) -> Run:
    """:func:`run` plus the run's files in ``config.out`` (when set): ``checkpoint.pt`` after every epoch,
    ``metrics.json`` (:attr:`Run.metrics`), ``history.json`` and, after a head warm-up, ``warmup_history.json``.

    Before anything is loaded or trained the output folder is created and proven writable, and locked
    (``OUT/.lock``) against a second run; with ``resume`` the checkpoint must exist, be intact and have been
    written with the same result-changing settings. Every file is written atomically. ``on_step`` /
    ``on_epoch`` are plain functions added to ``callbacks``; ``overrides`` replace fields of ``config``.
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides).resolved()
    device, info = _setup(config)
    hooks = CallbackList([*callbacks, LambdaCallback(on_step=on_step, on_epoch=on_epoch)])
    out = Path(config.out) if config.out else None
    if out is None and config.resume:
        raise ConfigError("resume=True needs out= (the folder with checkpoint.pt)", field="resume")
    if out is not None and info.is_main:
        prepare_output(out)
    checkpoint = out / CHECKPOINT_NAME if out is not None else None
    if config.resume and info.is_main and not checkpoint.exists():
        raise FileNotFoundError(
            f"resume=True but there is no checkpoint at {checkpoint}; run without --resume"
        )
    with OutputLock(out) if out is not None and info.is_main else nullcontext():
        result = _run(
            config,
            device=device,
            info=info,
            model=None,
            loss_fn=None,
            splits=None,
            callbacks=hooks,
            embed_train=False,
            nmi=True,
            checkpoint=checkpoint,
            announce=True,
        )
        if info.is_main and out is not None:
            write_json(out / "metrics.json", result.metrics)
            write_json(out / "history.json", result.history)
            if result.warmup is not None:
                write_json(out / "warmup_history.json", result.warmup["history"])
    distributed.barrier(info)
    return result


__all__ = ["Callback", "Run", "TrainResult", "run", "train"]

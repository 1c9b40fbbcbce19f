"""The training loop: P x K batches, optimiser and schedule, validation, early stopping, checkpoints.

:func:`fit` trains a model (and the loss's own parameters) in place. Every epoch re-seeds torch from
``(seed, epoch)`` and the sampler's batches depend only on ``(seed, epoch)``, so the same seed gives the same
result on CPU and a resumed run continues exactly where the interrupted one stopped. A step whose embeddings,
loss or updated parameters are no longer finite stops the run (:class:`TrainingDiverged`) before the epoch's
checkpoint is written, so the last good checkpoint stays.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import distributed
from .._checks import check_positive
from ..data import PKSampler
from ..evaluation import evaluate
from ..losses import MetricLoss
from .checkpoint import check_resumable, restore, save_checkpoint
from .config import TrainConfig
from .data import autocast, embed, iterate_batches


@dataclass
class StepInfo:
    """Given to ``on_step`` after every optimiser step.

    Attributes:
        epoch: 0-based epoch; step: 0-based global step (``epoch * batches_per_epoch + step in the epoch``).
        loss: the batch's training loss (a float, before the update).
        embeddings: (B, D) the (global) batch's embeddings, detached; labels: (B,) their labels.
        model: the model being trained (not the DDP wrapper); loss_fn: the loss module.
    """

    epoch: int
    step: int
    loss: float
    embeddings: Tensor
    labels: Tensor
    model: nn.Module
    loss_fn: MetricLoss


@dataclass
class FitResult:
    """What :func:`fit` returns: the per-epoch history and the best validation score and epoch."""

    history: list[dict[str, Any]]
    best_val: float | None
    best_epoch: int
    epochs: int
    seconds: float
    stopped_early: bool


class TrainingDiverged(FloatingPointError):
    """The loss, the embeddings or the parameters stopped being finite numbers; the message names the step."""


def loss_lr_mult(loss_fn: nn.Module, config: TrainConfig) -> float:
    """The learning-rate factor of the loss's own parameters: ``config.loss_lr_mult``, else the loss's ``lr_mult``
    attribute (1.0 when it has none)."""
    mult = config.loss_lr_mult if config.loss_lr_mult is not None else getattr(loss_fn, "lr_mult", 1.0)
    return check_positive(mult, "loss_lr_mult")


def make_optimizer(model: nn.Module, loss_fn: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser. Parameter groups: the model's ``embedding`` layer at ``lr``, the rest of the model
    at ``lr * backbone_lr_mult`` (one group when that is 1), the loss's parameters at ``lr * loss_lr_mult``."""
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("embedding")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("embedding")]
    if config.backbone_lr_mult == 1.0 or not head:
        groups = [{"params": head + body, "lr": config.lr}]
    else:  # a new head on a pretrained backbone: the backbone moves slower
        groups = [
            {"params": head, "lr": config.lr},
            {"params": body, "lr": config.lr * config.backbone_lr_mult},
        ]
    loss_params = [p for p in loss_fn.parameters() if p.requires_grad]
    if loss_params:
        groups.append({"params": loss_params, "lr": config.lr * loss_lr_mult(loss_fn, config)})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """``cosine`` (per epoch, to 0 at ``epochs``), ``step`` (x0.1 at 50 % and 75 % of the epochs) or ``none``."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        milestones = sorted({max(1, config.epochs // 2), max(1, 3 * config.epochs // 4)})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _largest(tensors: Iterable[Tensor]) -> float:
    """max |x| over ``tensors`` (nan or inf when one of them is not finite)."""
    values = [t.detach() for t in tensors]
    return float(torch.nn.utils.get_total_norm(values, norm_type=float("inf"))) if values else 0.0


def _check_embeddings(embeddings: Tensor, where: str, lr: float) -> None:
    # the losses L2-normalise: a row whose norm overflows becomes 0 and the loss stays finite while nothing learns
    if not bool(torch.isfinite(torch.linalg.vector_norm(embeddings.detach(), dim=1)).all()):
        raise TrainingDiverged(
            f"training diverged at {where}: the embeddings are no longer finite (largest |value| "
            f"{_largest([embeddings]):.3g}, their norms overflow); lower the learning rate "
            f"(lr={lr:g})"
        )


def _check_parameters(modules: tuple[nn.Module, ...], where: str, lr: float) -> None:
    largest = _largest(p for m in modules for p in m.parameters())
    if not np.isfinite(largest):
        raise TrainingDiverged(
            f"training diverged at {where}: the optimiser step made the parameters {largest}; "
            f"lower the learning rate (lr={lr:g})"
        )


def fit(
    model: nn.Module,
    loss_fn: MetricLoss,
    train_set: Any,
    *,
    val_set: Any | None = None,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    dist_info: distributed.DistInfo | None = None,
) -> FitResult:
    """Train ``model`` (and ``loss_fn``'s own parameters) in place; on return it holds the best weights.

    ``config`` must be :meth:`TrainConfig.resolved`. ``on_step`` / ``on_epoch`` are called after every step /
    epoch (an epoch record is ``{"epoch", "loss", "val_recall@1", "lr", "seconds"}``); under torchrun they run
    on every process. ``checkpoint``: file written (atomically, with the config) after each epoch; with ``resume``
    training continues from it, after checking that it is intact and was written with the same settings
    (:func:`~dmlbook.train.checkpoint.check_resumable`). Raises :class:`TrainingDiverged` when the loss, the
    embeddings or the updated parameters stop being finite.
    """
    device = torch.device(device)
    info = dist_info or distributed.DistInfo()
    amp = device.type == "cuda" if config.amp is None else bool(config.amp) and device.type == "cuda"
    saved = None
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise FileNotFoundError(
                f"resume=True but there is no checkpoint at {checkpoint}; run without --resume"
            )
        saved = check_resumable(checkpoint, config, map_location=device)  # before anything trains
    model.to(device)
    loss_fn.to(device)
    net = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = make_optimizer(model, loss_fn, config)
    schedule = make_schedule(optimizer, config)
    scaler = (
        torch.amp.GradScaler("cuda", enabled=amp and not torch.cuda.is_bf16_supported())
        if device.type == "cuda"
        else None
    )
    sampler = PKSampler(
        train_set.labels,
        p=config.batch_p,
        k=config.batch_k,
        batches_per_epoch=config.batches_per_epoch,
        seed=config.seed,
        num_replicas=info.world_size,
        rank=info.rank,
    )
    state = {
        "epoch": 0,
        "history": [],
        "best_val": None,
        "best_epoch": 0,
        "bad_epochs": 0,
        "seconds": 0.0,
        "best_state": None,
    }
    if saved is not None:
        state = restore(saved, checkpoint, model, loss_fn, optimizer, schedule)
        del saved
    stopped_early = state.get("stopped_early", False)
    progress = _progress_factory(config.progress and info.is_main)
    needs_features = bool(getattr(loss_fn, "needs_features", False))
    while state["epoch"] < config.epochs and not stopped_early:
        epoch = state["epoch"]
        started = time.perf_counter()
        torch.manual_seed(config.seed * 100_003 + epoch)
        sampler.set_epoch(epoch)
        net.train()
        loss_fn.train()
        losses = []
        bar = progress(total=len(sampler), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
        for step, (x, y) in enumerate(
            iterate_batches(train_set, sampler, device=device, num_workers=config.num_workers)
        ):
            where = f"epoch {epoch + 1}, step {epoch * len(sampler) + step}"
            if needs_features:  # a loss with a classifier on the pooled features (PooledFeatureCAA)
                with autocast(device, amp):
                    local, pooled = net(x, return_features=True)  # (B_local, D), (B_local, F)
                both, labels = distributed.gather_embeddings(
                    torch.cat([local.float(), pooled.float()], dim=1), y
                )  # (B, D + F), (B,)
                embeddings, features = both[:, : local.shape[1]], both[:, local.shape[1] :]  # (B, D), (B, F)
                _check_embeddings(embeddings, where, config.lr)
                loss = loss_fn(embeddings, labels, features=features)
            else:
                with autocast(device, amp):
                    local = net(x).float()  # (B_local, D)
                embeddings, labels = distributed.gather_embeddings(local, y)  # (B, D), (B,)
                _check_embeddings(embeddings, where, config.lr)
                loss = loss_fn(embeddings, labels)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"training diverged at {where}: the loss became {loss.item()}; lower the "
                    f"learning rate (lr={config.lr:g})"
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            _check_parameters((model, loss_fn), where, config.lr)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if on_step is not None:
                on_step(
                    StepInfo(
                        epoch,
                        epoch * len(sampler) + step,
                        losses[-1],
                        embeddings.detach(),
                        labels.detach(),
                        model,
                        loss_fn,
                    )
                )
        bar.close()
        lr = optimizer.param_groups[0]["lr"]
        schedule.step()
        val = None
        if val_set is not None and len(val_set) and info.is_main:
            emb, lab = embed(
                model,
                val_set,
                device=device,
                batch_size=config.eval_batch_size,
                num_workers=config.num_workers,
                amp=amp,
            )
            val = evaluate(emb, lab, ks=(1,), nmi=False)["recall@1"]
        val = distributed.broadcast_object(val, info)
        state["seconds"] += time.perf_counter() - started
        record = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "val_recall@1": val,
            "lr": lr,
            "seconds": round(state["seconds"], 3),
        }
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if val is None or state["best_val"] is None or val > state["best_val"]:
            state["best_val"], state["best_epoch"], state["bad_epochs"] = val, epoch + 1, 0
            state["best_state"] = copy.deepcopy(
                {"model": model.state_dict(), "loss_fn": loss_fn.state_dict()}
            )
        else:
            state["bad_epochs"] += 1
        stopped_early = bool(config.patience and val is not None and state["bad_epochs"] >= config.patience)
        state["stopped_early"] = stopped_early
        if checkpoint is not None and info.is_main:
            save_checkpoint(checkpoint, model, loss_fn, optimizer, schedule, state, config=config)
        if on_epoch is not None:
            on_epoch(dict(record))
        if info.is_main and config.progress:
            print(
                f"epoch {epoch + 1}: loss {record['loss']:.4f}"
                + (f", val recall@1 {val:.4f}" if val is not None else ""),
                file=sys.stderr,
            )
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"]["model"])
        loss_fn.load_state_dict(state["best_state"]["loss_fn"])
    return FitResult(
        state["history"],
        state["best_val"],
        state["best_epoch"],
        state["epoch"],
        state["seconds"],
        stopped_early,
    )


def _progress_factory(enabled: bool) -> Callable[..., Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the train extra
        enabled = False
    if enabled:
        return lambda **kw: tqdm(**kw)
    return lambda **kw: _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, **kw: Any) -> None: ...
    def close(self) -> None: ...

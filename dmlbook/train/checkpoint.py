"""The per-epoch checkpoint: written atomically with the run's configuration, read back with clear errors.

A checkpoint holds the model, the loss (its classifier, centres or proxies), the optimiser and schedule, the loop's
state (epoch, history, best weights) and ``config``: the resolved :class:`~dmlbook.train.config.TrainConfig`'s
result-changing fields (:meth:`~dmlbook.train.config.TrainConfig.result_fields`). ``--resume`` compares them with
the new run's and refuses a change that would make ``metrics.json`` describe a run that never happened (another
seed, loss, model, batch, learning rate ...); ``epochs`` may change, so a finished run can be extended.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .files import atomic_write

CHECKPOINT_NAME = "checkpoint.pt"
_KEYS = ("model", "loss_fn", "optimizer", "schedule", "state")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: damaged, or written by a run with other settings."""


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    state: dict[str, Any],
    *,
    config: TrainConfig | None = None,
) -> None:
    """Write the checkpoint atomically (:func:`~dmlbook.train.files.atomic_write`)."""
    payload = {
        "model": model.state_dict(),
        "loss_fn": loss_fn.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "state": state,
        "config": config.result_fields() if config is not None else None,
    }
    atomic_write(path, lambda f: torch.save(payload, f))


def _damaged(path: Path, why: str) -> CheckpointError:
    return CheckpointError(
        f"the checkpoint {path} is damaged ({why}); delete it, or run without --resume (the run "
        f"starts afresh and replaces it)"
    )


def _first_sentence(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text.split('. ')[0][:160]}" if text else type(err).__name__


def load_checkpoint(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint at ``path``; a truncated, empty or foreign file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise _damaged(path, "the file is empty")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=False)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        UnicodeDecodeError,
        OSError,
    ) as err:
        raise _damaged(path, _first_sentence(err)) from None
    if not isinstance(saved, dict) or any(k not in saved for k in _KEYS):
        raise _damaged(
            path, f"it is not a dmlbook training checkpoint (expected the entries {', '.join(_KEYS)})"
        )
    return saved


def config_differences(saved: dict[str, Any] | None, config: TrainConfig) -> list[str]:
    """``"name: saved -> now"`` for every result-changing field that differs (empty without a saved config)."""
    if not saved:
        return []
    now = config.result_fields()
    return [
        f"{k}: {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k)
    ]


def check_resumable(
    path: str | os.PathLike[str], config: TrainConfig, *, map_location: Any = "cpu"
) -> dict[str, Any]:
    """Load the checkpoint for ``--resume`` and check that it was written by a run with ``config``'s settings.

    Raises :class:`CheckpointError` naming the file and the fields that differ (a resumed run must compute what an
    uninterrupted one would have); returns the loaded checkpoint.
    """
    saved = load_checkpoint(path, map_location=map_location)
    differ = config_differences(saved.get("config"), config)
    if differ:
        raise CheckpointError(
            f"cannot resume from {path}: it was written by a run with other settings ("
            f"{'; '.join(differ)}); use the same settings, or another --out for the new run"
        )
    return saved


def restore(
    saved: dict[str, Any],
    path: str | os.PathLike[str],
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
) -> dict[str, Any]:
    """Load ``saved`` into the run's objects; returns the loop state. A shape mismatch (a checkpoint without a
    stored config, from another model or loss) raises :class:`CheckpointError`."""
    try:
        model.load_state_dict(saved["model"])
        loss_fn.load_state_dict(saved["loss_fn"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"cannot resume from {path}: it does not fit this run's model or loss "
            f"({_first_sentence(err)}); use the settings it was written with, or another "
            f"--out"
        ) from None
    return saved["state"]

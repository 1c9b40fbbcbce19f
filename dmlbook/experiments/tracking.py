"""Tracked training runs for the book's chapters on mining, and readers of the tracked curves.

Chapters 1, 2 and 6 train one configuration per mining method and watch each run with the library's callbacks
(:class:`~dmlbook.train.TrainingTracker`: trivial tuples, gradient share and Recall@1 every few steps;
:class:`~dmlbook.train.BatchSnapshot`: one training batch). This module adds:

* :func:`train_tracked`: one :func:`dmlbook.train.run` with a tracker, kept as a :class:`TrackedRun`;
* :func:`train_methods`: one tracked run per method, on splits loaded once, changing only the loss;
* :func:`start_end`, :func:`first_step_reaching` and :func:`summarize_runs`: what the curves and runs say.

The measurements themselves live in the core: :mod:`dmlbook.diagnostics` (trivial fractions, gradient share,
class spread) and :mod:`dmlbook.train.callbacks`. The trackers measure in eval mode and restore the random state,
so a tracked run trains exactly like an untracked one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..train import Run, TrainConfig, TrainingTracker, load_splits, run, subsample

__all__ = [
    "TrackedRun",
    "first_step_reaching",
    "start_end",
    "summarize_runs",
    "train_methods",
    "train_tracked",
]


def start_end(values: Sequence[float] | np.ndarray, window: int = 3) -> tuple[float, float]:
    """``(first value, mean of the last window values)`` of a tracked series, ignoring nan at the end.

    The start is the first record (step 0, the untrained model's first batch); the end is averaged over the last
    ``window`` records because single batches are noisy.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("start_end needs at least one value")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int; got {window!r}")
    tail = values[-window:]
    tail = tail[~np.isnan(tail)]
    return float(values[0]), float(tail.mean()) if tail.size else float("nan")


def first_step_reaching(
    steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray, threshold: float
) -> float:
    """The first step at which ``values`` reaches ``threshold`` (a convergence time); nan if it never does."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.shape != values.shape:
        raise ValueError(f"steps {steps.shape} and values {values.shape} must have the same shape")
    hit = np.nonzero(values >= threshold)[0]
    return float(steps[hit[0]]) if hit.size else float("nan")


@dataclass
class TrackedRun(Run):
    """A :class:`~dmlbook.train.Run` (metrics, history, model, loss_fn, config, test and train embeddings) with
    the name given to it (e.g. the method) and the tracker's per-step ``records`` (empty without a tracker)."""

    name: str = ""
    records: list[dict[str, float]] = field(default_factory=list)


def _as_list(callbacks: Any) -> list[Any]:
    """One callback or a sequence of them -> a list."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (list, tuple)):
        return list(callbacks)
    return [callbacks]


def train_tracked(
    config: TrainConfig,
    *,
    name: str | None = None,
    tracker: TrainingTracker | None = None,
    callbacks: Sequence[Any] = (),
    embed_train: bool = False,
    splits: tuple[Any, Any, Any] | None = None,
    test_samples: int | None = None,
) -> TrackedRun:
    """One :func:`dmlbook.train.run` of ``config`` watched by ``tracker`` (and ``callbacks``); nothing is written.

    Args:
        config: the run's :class:`~dmlbook.train.TrainConfig`.
        name: the run's label (default: the loss name).
        tracker: a :class:`~dmlbook.train.TrainingTracker`; without an ``eval_set`` it measures Recall@1 on the
            run's test split (the ``test_samples`` subset, cut to its ``eval_samples``).
        callbacks: more callbacks of the run (e.g. a :class:`~dmlbook.train.BatchSnapshot`), called before the
            tracker on every step.
        embed_train: also embed the training split with the final model.
        splits: ``(train, val or None, test)`` already loaded for ``config`` (default: :func:`load_splits`).
        test_samples: evaluate on a seeded subset of this many test samples (:func:`dmlbook.train.subsample`;
            e.g. the 35,000 Fashion-MNIST test images on a CPU); None: all.
    """
    config = config.resolved()
    train_set, val_set, test_set = splits if splits is not None else load_splits(config)
    hooks = [*_as_list(callbacks), *([tracker] if tracker is not None else [])]
    result = run(
        config,
        splits=(train_set, val_set, subsample(test_set, test_samples, config.seed)),
        callbacks=hooks,
        embed_train=embed_train,
    )
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(Run)}
    records = list(tracker.records) if tracker is not None else []
    return TrackedRun(**fields, name=name or config.loss, records=records)


def train_methods(
    base: TrainConfig,
    methods: Mapping[str, tuple[str, Mapping[str, Any]]],
    *,
    track: Mapping[str, Any] | None = None,
    callbacks: Mapping[str, Any] | None = None,
    embed_train: bool = False,
    test_samples: int | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> dict[str, TrackedRun]:
    """Train ``base`` once per method, changing only the loss, and return ``{name: TrackedRun}``.

    Args:
        base: a :class:`~dmlbook.train.TrainConfig`; each run replaces its ``loss`` and ``loss_args``.
        methods: ``{name: (loss name, loss_args)}``, e.g. ``{"batch_hard": ("triplet", {"mining": "batch_hard"})}``.
        track: keyword arguments of a :class:`~dmlbook.train.TrainingTracker` (one per run), or None for no
            tracking.
        callbacks: more callbacks by method name, each one callback or a list of them (e.g. a
            :class:`~dmlbook.train.BatchSnapshot` for one run).
        embed_train: also embed the training split with each final model.
        test_samples: evaluate on a seeded subset of this many test samples (None: all).
        progress: a tqdm bar over the methods.
        desc: the bar's label.

    The splits are loaded once and shared (the runs differ only in the loss), and every run starts from the same
    seed, so the runs see the same batches in the same order and start from the same initial weights.
    """
    callbacks = dict(callbacks or {})
    unknown = sorted(set(callbacks) - set(methods))
    if unknown:
        raise ValueError(f"callbacks for unknown method(s) {unknown}; methods: {', '.join(methods)}")
    configs = {
        name: dataclasses.replace(base, loss=loss, loss_args=dict(args))
        for name, (loss, args) in methods.items()
    }
    splits = load_splits(next(iter(configs.values())).resolved()) if configs else None
    names: Any = list(configs)
    if progress:
        from tqdm.auto import tqdm

        names = tqdm(names, desc=desc or "methods")
    runs = {}
    for name in names:
        tracker = TrainingTracker(**track) if track is not None else None
        runs[name] = train_tracked(
            configs[name],
            name=name,
            tracker=tracker,
            callbacks=_as_list(callbacks.get(name)),
            embed_train=embed_train,
            splits=splits,
            test_samples=test_samples,
        )
    return runs


def summarize_runs(runs: Mapping[str, Run], key: str) -> dict[str, float]:
    """``{name: run.metrics[key]}`` for a dict of runs (e.g. ``key="recall@1"``)."""
    return {name: float(r.metrics[key]) for name, r in runs.items()}

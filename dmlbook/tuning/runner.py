"""Training for the tuner: the runner protocol, the input checks shared by the search and the final runs, and
the final runs themselves.

A runner is ``runner(config, *, splits) -> Run``: it trains ``config`` on ``splits = (train, val or None, test
or None)`` and returns an object whose ``metrics`` dict holds at least the score's key (``"map@r"``) and, for
the epochs of the final runs, ``best_epoch``. The default is the library's :func:`dmlbook.train.run`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .._checks import check_int
from .results import FinalResult
from .space import configure

#: The run metrics that :func:`final_runs` keeps for each seed (when the run reports them).
FINAL_METRICS = (
    "recall@1",
    "recall@2",
    "recall@4",
    "recall@8",
    "map@r",
    "r_precision",
    "nmi",
    "epochs",
    "seconds",
)
Runner = Callable[..., Any]


def default_runner(config: Any, *, splits: tuple[Any, Any, Any]) -> Any:
    """The library's :func:`dmlbook.train.run` on ``splits`` (NMI skipped: the tuner reads MAP@R and
    Recall@k)."""
    from ..train import run

    return run(config, splits=splits, nmi=False)


def resolved_config(config: Any) -> Any:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    return config.resolved() if hasattr(config, "resolved") else config


def check_dataset(dataset: Any, name: str) -> Any:
    if dataset is None or not hasattr(dataset, "labels") or not hasattr(dataset, "subset"):
        raise TypeError(
            f"{name} must be a DMLDataset (with .labels and .subset); got {type(dataset).__name__}"
        )
    return dataset


def check_runner(runner: Runner | None) -> Runner:
    if runner is None:
        return default_runner
    if not callable(runner):
        raise TypeError(
            f"runner must be a function runner(config, *, splits) -> Run; got {type(runner).__name__}"
        )
    return runner


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, Sequence) and not isinstance(seeds, str):
        out = [check_int(s, "seeds[i]", 0) for s in seeds]
        if not out:
            raise ValueError("seeds must name at least one seed")
        return out
    return list(range(check_int(seeds, "seeds", 1)))


def final_runs(
    config: Any,
    params: dict[str, float],
    *,
    train_set: Any,
    test_set: Any,
    seeds: int | Sequence[int] = 5,
    epochs: int | None = None,
    runner: Runner | None = None,
) -> FinalResult:
    """Train ``config`` with ``params`` on all of ``train_set`` once per seed and measure each run on
    ``test_set`` (``runner(config, splits=(train_set, None, test_set))``).

    Args:
        config: the searched :class:`~dmlbook.train.TrainConfig`; ``params``: the chosen values.
        seeds: how many seeds (0, 1, ...) or the seeds themselves.
        epochs: epochs per run, without early stopping (there are no validation classes left); default: the
            config's. :func:`tune` passes the epochs the folds chose.
        runner: as for :func:`search`.
    """
    config = dataclasses.replace(resolved_config(config), progress=False)
    train_set = check_dataset(train_set, "train_set")
    test_set = check_dataset(test_set, "test_set")
    epochs = config.epochs if epochs is None else check_int(epochs, "epochs", 1)
    runner = check_runner(runner)
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of hyper-parameter values; got {type(params).__name__}")
    chosen = configure(dataclasses.replace(config, epochs=epochs, patience=0), params)
    runs = []
    for seed in _seeds(seeds):
        metrics = runner(dataclasses.replace(chosen, seed=seed), splits=(train_set, None, test_set)).metrics
        runs.append({"seed": seed, **{k: metrics[k] for k in FINAL_METRICS if metrics.get(k) is not None}})
    return FinalResult(params=dict(params), epochs=int(epochs), seeds=[r["seed"] for r in runs], runs=runs)


def load_train_test(config: Any) -> tuple[Any, Any]:
    """``(train, test)`` of the configured dataset: every training class (no validation carve-out) and the
    test classes, loaded once (the dataset's seed is ``config.seed``)."""
    from ..data import load_dataset

    config = resolved_config(config)
    kwargs = dict(root=config.data_root, val_fraction=0.0, seed=config.seed, **config.data_args)
    return (
        load_dataset(config.dataset, split="train", **kwargs),
        load_dataset(config.dataset, split="test", **kwargs),
    )


__all__ = [
    "FINAL_METRICS",
    "Runner",
    "check_dataset",
    "check_runner",
    "default_runner",
    "final_runs",
    "load_train_test",
    "resolved_config",
]

"""The protocol of Musgrave, Belongie & Lim (*A Metric Learning Reality Check*, ECCV 2020), as three
functions.

1. :func:`search` tunes one loss with a fixed budget of Optuna trials. It receives **only the training
   split**: each trial trains on k − 1 class-disjoint folds of the training classes, stops early on the
   held-out fold and is scored by MAP@R on it; the trial's score is the mean over the k folds. The test
   classes cannot reach it (passing them is an error), except in the explicitly named test-set feedback arm,
   ``select_on="test"``, which scores each trial by training on all training classes and measuring on the
   test classes (the dishonest protocol, kept so that a chapter can measure how much it inflates the result).
2. :func:`final_runs` trains the chosen configuration with several seeds on all training classes, for the
   number of epochs the folds chose, and measures each run once on the test classes.
3. :func:`tune` loads the dataset, runs 1 then 2 and returns both.

Training goes through ``runner(config, *, splits)``, by default :func:`default_runner` (the library's
:func:`dmlbook.train.run`); a notebook can pass its own, e.g. one that wraps the configured loss in
symmetrical synthesis (Gu & Ko, AAAI 2020), whose space is then the wrapped loss's::

    def synthesis_runner(config, *, splits):
        wrapped = SymmetricalSynthesis(build_loss(config.loss, **config.loss_args))
        return run(config, splits=splits, loss_fn=wrapped, nmi=False)

    tune(TrainConfig(dataset="cars196_features", loss="npairs", batch_k=2), n_trials=20,
         runner=synthesis_runner, study_name="symm-npairs")
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._checks import check_choice, check_flag, check_int
from .folds import class_folds, fold_datasets
from .results import SearchResult, TuneResult
from .runner import Runner, check_dataset, check_runner, final_runs, load_train_test, resolved_config
from .space import Param, check_space, configure, search_space
from .study import (
    SAMPLERS,
    StudyLock,
    fail_interrupted,
    open_study,
    progress_bar,
    quiet_optuna,
    run_trials,
    run_workers,
    scratch_folder,
    storage_url,
    torch_threads,
    trial_records,
    usable_cores,
)

#: ``select_on`` values: ``"val"`` is the honest protocol; ``"test"`` is the test-set feedback arm.
SELECT_ON = ("val", "test")
#: Config fields that do not change what a trial computes (left out of the study's fingerprint).
_NOT_RESULT = frozenset(
    {"progress", "out", "resume", "device", "num_workers", "eval_batch_size", "data_root"}
)


@dataclass
class _Outcome:
    score: float
    attrs: dict[str, Any]


@dataclass
class _Objective:
    """Scores a trial's params: one run per ``(train, val)`` pair, the mean of ``metric`` over them."""

    config: Any
    pairs: list[tuple[Any, Any]]
    runner: Runner
    metric: str

    def __call__(self, params: dict[str, float]) -> _Outcome:
        started = time.perf_counter()
        scores, epochs, diverged = [], [], False
        for train, val in self.pairs:
            config = configure(self.config, params)
            try:
                metrics = self.runner(config, splits=(train, val, val)).metrics
            except FloatingPointError:  # the engine's TrainingDiverged: the configuration failed, score 0
                scores.append(0.0)
                epochs.append(int(config.epochs))
                diverged = True
                continue
            if self.metric not in metrics:
                raise KeyError(f"the runner's metrics have no {self.metric!r}; they have: {sorted(metrics)}")
            value = metrics[self.metric]
            if value is None or not math.isfinite(value):
                value, diverged = 0.0, True
            scores.append(float(value))
            epochs.append(int(metrics.get("best_epoch") or metrics.get("epochs") or config.epochs))
        attrs = {
            "fold_scores": scores,
            "fold_epochs": epochs,
            "seconds": time.perf_counter() - started,
            "diverged": diverged,
        }
        return _Outcome(sum(scores) / len(scores), attrs)


def _check_space_for(loss: str, space: tuple[Param, ...], config: Any) -> None:
    """Every name of ``space`` must be a config field or an argument of the loss's constructor."""
    from ..losses import LOSSES

    fields = {f.name for f in dataclasses.fields(config)}
    accepted = set(inspect.signature(LOSSES[loss]).parameters) if loss in LOSSES else set()
    unknown = sorted(p.name for p in space if p.name not in fields and p.name not in accepted)
    if unknown:
        raise ValueError(
            f"space names {unknown}, which are neither arguments of loss {loss!r} "
            f"({', '.join(sorted(accepted - {'self'}))}) nor config fields"
        )


def _fingerprint(config: Any) -> str:
    """The config's result-changing fields as JSON (a resumed study must have been made with the same)."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_RESULT}
    return json.dumps(fields, sort_keys=True, default=str)


def search(
    config: Any,
    *,
    train_set: Any,
    n_trials: int,
    folds: int = 4,
    sampler: str = "tpe",
    seed: int = 0,
    space: Sequence[Param] | None = None,
    lr_range: tuple[float, float] | None = None,
    metric: str = "map@r",
    startup_trials: int = 10,
    fold_groups: str | None = None,
    storage: str | os.PathLike | None = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    threads: int | None = None,
    start_method: str | None = None,
    progress: bool = True,
    runner: Runner | None = None,
    select_on: str = "val",
    test_set: Any = None,
) -> SearchResult:
    """Tune ``config.loss`` with ``n_trials`` Optuna trials scored on class-disjoint folds of ``train_set``.

    Each trial samples the loss's hyper-parameters and the learning rate
    (:func:`~dmlbook.tuning.search_space`), trains one run per fold (``runner(config, splits=(fold_train,
    fold_val, fold_val))``: early stopping and the score on the same held-out classes) and scores the mean of
    ``metric`` over the folds. The folds depend only on ``train_set`` and ``seed``, so every trial (and every
    loss tuned with the same seed) meets the same folds.

    Args:
        config: a :class:`~dmlbook.train.TrainConfig` (resolved here); its ``loss`` is tuned, its other fields
            (epochs, patience, model, batch) are kept by every trial.
        train_set: the training classes, the only data the honest search sees.
        n_trials: the budget, the same for every loss; a study resumed from ``storage`` continues up to it.
        folds: k, the number of class-disjoint folds (>= 2; 4 in Musgrave et al.).
        sampler: ``"tpe"`` (Optuna's TPE after ``startup_trials`` random trials) or ``"random"``; seeded.
        seed: seeds the folds and the sampler: the same seed gives the same trials (one process).
        space: the searched parameters (default: :func:`~dmlbook.tuning.search_space` of the loss, the
            learning rate a decade either side of the config's, or ``lr_range``).
        metric: the run metric that scores a fold (``"map@r"``).
        fold_groups: a ``train_set.meta`` key (e.g. ``"alphabet"``): folds of whole groups instead of classes.
        storage: an SQLite file path (or an Optuna storage URL) that keeps the trials, so that an interrupted
            search resumes; None keeps them in memory (and ``n_jobs > 1`` then uses a temporary file). One
            search per study at a time: a new one marks the trials it finds running as failed and redoes them.
        study_name: the study's name in the storage (default ``"<loss>-<select_on>-seed<seed>"``).
        n_jobs: worker processes (each trains one trial at a time); ``threads``: torch threads per worker
            (default: the usable cores divided by ``n_jobs``; with ``n_jobs=1`` the current setting);
            ``start_method``: the multiprocessing start method (default ``fork`` where available).
        progress: show a progress bar of the trials.
        runner: ``runner(config, *, splits) -> Run`` (default :func:`default_runner`).
        select_on: ``"val"`` (the honest protocol) or ``"test"``: THE TEST-SET FEEDBACK ARM, which scores each
            trial by training on all of ``train_set`` and measuring ``metric`` on ``test_set`` (also the early
            stopping set). Only for showing how much such feedback inflates a result.
        test_set: the test classes; required by ``select_on="test"`` and refused otherwise.

    Returns:
        a :class:`~dmlbook.tuning.SearchResult` (best params, every counted trial, the epochs for final runs).
    """
    select_on = check_choice(select_on, SELECT_ON, "select_on")
    if select_on == "val" and test_set is not None:
        raise ValueError(
            "the honest search (select_on='val') never sees the test classes: do not pass test_set "
            "(select_on='test' is the test-set feedback arm)"
        )
    if select_on == "test" and test_set is None:
        raise ValueError("select_on='test' (the test-set feedback arm) needs test_set")
    config = dataclasses.replace(resolved_config(config), progress=False)
    train_set = check_dataset(train_set, "train_set")
    n_trials = check_int(n_trials, "n_trials", 1)
    folds = check_int(folds, "folds", 2)
    sampler = check_choice(sampler, SAMPLERS, "sampler")
    seed = check_int(seed, "seed", 0)
    startup_trials = check_int(startup_trials, "startup_trials", 0)
    n_jobs = check_int(n_jobs, "n_jobs", 1)
    threads = None if threads is None else check_int(threads, "threads", 1)
    progress = check_flag(progress, "progress")
    runner = check_runner(runner)
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a metric name such as 'map@r'; got {type(metric).__name__}")
    space = (
        search_space(config.loss, lr=config.lr, lr_range=lr_range) if space is None else check_space(space)
    )
    _check_space_for(config.loss, space, config)

    if select_on == "val":
        groups = None
        if fold_groups is not None:
            if fold_groups not in getattr(train_set, "meta", {}):
                raise ValueError(
                    f"fold_groups={fold_groups!r} is not a meta key of train_set; it has: "
                    f"{sorted(getattr(train_set, 'meta', {}))}"
                )
            groups = train_set.meta[fold_groups]
        pairs = [
            fold_datasets(train_set, f)
            for f in class_folds(train_set.labels, k=folds, seed=seed, groups=groups)
        ]
    else:
        pairs = [(train_set, check_dataset(test_set, "test_set"))]
    objective = _Objective(config, pairs, runner, metric)

    study_name = study_name or f"{config.loss}-{select_on}-seed{seed}"
    settings = {
        "loss": config.loss,
        "select_on": select_on,
        "metric": metric,
        "folds": folds if select_on == "val" else None,
        "fold_groups": fold_groups,
        "sampler": sampler,
        "seed": seed,
        "startup_trials": startup_trials,
        "space": [p.as_dict() for p in space],
        "config": _fingerprint(config),
    }
    with scratch_folder(storage is None and n_jobs > 1) as scratch, quiet_optuna():
        url = storage_url(os.path.join(scratch, "study.db") if scratch else storage)
        study = open_study(url, study_name, settings)
        lock = StudyLock.for_study(url, study_name)
        with lock.held():
            fail_interrupted(study)  # trials left running by an interrupted search are retried
        bar = progress_bar(n_trials, enabled=progress, label=f"tune {config.loss} ({select_on})")

        def show(current: Any = None) -> None:
            if bar is None:
                return
            records = trial_records(current or study, n_trials)
            bar.n = len(records)
            if records:
                bar.set_postfix({metric: f"{max(r.score for r in records):.4f}"}, refresh=False)
            bar.refresh()

        loop = {
            "n_trials": n_trials,
            "space": space,
            "evaluate": objective,
            "sampler": sampler,
            "seed": seed,
            "startup_trials": startup_trials,
        }
        try:
            show()
            if n_jobs == 1:
                with torch_threads(threads):
                    run_trials(study, lock=lock, on_trial=show, **loop)
            else:
                jobs = min(n_jobs, n_trials)
                per_job = threads or max(1, usable_cores() // jobs)
                run_workers(
                    n_jobs=jobs,
                    threads=per_job,
                    url=url,
                    study_name=study_name,
                    loop=loop,
                    start_method=start_method,
                    on_poll=show,
                )
        finally:
            if bar is not None:
                bar.close()
        records = trial_records(study, n_trials)
    best = max(records, key=lambda r: (r.score, -r.number))
    epochs = (
        max(1, round(sum(best.fold_epochs) / len(best.fold_epochs))) if best.fold_epochs else config.epochs
    )
    return SearchResult(
        loss=config.loss,
        select_on=select_on,
        metric=metric,
        n_trials=n_trials,
        folds=folds if select_on == "val" else 1,
        sampler=sampler,
        seed=seed,
        space=[p.as_dict() for p in space],
        trials=records,
        best_trial=best.number,
        best_params=dict(best.params),
        best_score=best.score,
        best_epochs=int(epochs),
        study_name=study_name,
        storage=None if storage is None else str(url),
    )


def tune(
    config: Any,
    *,
    n_trials: int,
    folds: int = 4,
    seeds: int | Sequence[int] = 5,
    sampler: str = "tpe",
    seed: int = 0,
    select_on: str = "val",
    train_set: Any = None,
    test_set: Any = None,
    final_epochs: int | str = "chosen",
    space: Sequence[Param] | None = None,
    lr_range: tuple[float, float] | None = None,
    metric: str = "map@r",
    startup_trials: int = 10,
    fold_groups: str | None = None,
    storage: str | os.PathLike | None = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    threads: int | None = None,
    start_method: str | None = None,
    progress: bool = True,
    runner: Runner | None = None,
) -> TuneResult:
    """The whole protocol for one loss: :func:`search` on the training classes, then :func:`final_runs` of the
    chosen configuration with ``seeds`` on all training classes, measured once on the test classes.

    ``train_set`` / ``test_set``: the data (both or neither; default :func:`load_train_test` of ``config``).
    Only ``train_set`` reaches the search unless ``select_on="test"`` (THE TEST-SET FEEDBACK ARM, see
    :func:`search`). ``final_epochs``: ``"chosen"`` (the chosen trial's mean best epoch over its folds) or a
    number. The other arguments are :func:`search`'s.
    """
    if (train_set is None) != (test_set is None):
        raise TypeError("pass both train_set and test_set, or neither (then they are loaded from config)")
    if final_epochs != "chosen" and (
        isinstance(final_epochs, (str, bool)) or not isinstance(final_epochs, int) or final_epochs < 1
    ):
        raise ValueError(f"final_epochs must be 'chosen' or an int >= 1; got {final_epochs!r}")
    if train_set is None:
        train_set, test_set = load_train_test(config)
    found = search(
        config,
        train_set=train_set,
        n_trials=n_trials,
        folds=folds,
        sampler=sampler,
        seed=seed,
        space=space,
        lr_range=lr_range,
        metric=metric,
        startup_trials=startup_trials,
        fold_groups=fold_groups,
        storage=storage,
        study_name=study_name,
        n_jobs=n_jobs,
        threads=threads,
        start_method=start_method,
        progress=progress,
        runner=runner,
        select_on=select_on,
        test_set=test_set if select_on == "test" else None,
    )
    epochs = found.best_epochs if final_epochs == "chosen" else final_epochs
    final = final_runs(
        config,
        found.best_params,
        train_set=train_set,
        test_set=test_set,
        seeds=seeds,
        epochs=epochs,
        runner=runner,
    )
    return TuneResult(found, final)


__all__ = ["SELECT_ON", "search", "tune"]

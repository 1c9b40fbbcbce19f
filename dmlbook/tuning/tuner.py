"""The protocol of Musgrave, Belongie & Lim (*A Metric Learning Reality Check*, ECCV 2020), as three functions.

1. :func:`search` tunes one loss with a fixed budget of Optuna trials. It receives **only the training split**:
   each trial trains on k − 1 class-disjoint folds of the training classes, stops early on the held-out fold
   and is scored by MAP@R on it; the trial's score is the mean over the k folds. The test classes cannot reach
   it (passing them is an error), except in the explicitly named test-set feedback arm, ``select_on="test"``,
   which scores each trial by training on all training classes and measuring on the test classes (the dishonest
   protocol, kept so that a chapter can measure how much it inflates the reported number).
2. :func:`final_runs` trains the chosen configuration with several seeds on all training classes, for the
   number of epochs the folds chose, and measures each run once on the test classes.
3. :func:`tune` loads the dataset, runs 1 then 2 and returns both.

Training goes through ``runner(config, *, splits)``, by default :func:`default_runner` (the library's
:func:`dmlbook.train.run`); a notebook can pass its own, e.g. one that wraps the loss in symmetrical synthesis.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._checks import check_choice, check_flag, check_int
from .folds import class_folds, fold_datasets
from .results import FinalResult, SearchResult, TrialRecord, TuneResult
from .space import Param, check_space, configure, search_space
from .study import (
    SAMPLERS,
    StudyLock,
    counted,
    fail_interrupted,
    open_storage,
    optuna_module,
    quiet_optuna,
    run_trials,
    run_workers,
    storage_url,
)

#: ``select_on`` values: ``"val"`` is the honest protocol; ``"test"`` is the test-set feedback arm.
SELECT_ON = ("val", "test")
#: The run metrics that :func:`final_runs` keeps for each seed (when the run reports them).
FINAL_METRICS = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi", "epochs", "seconds")
#: Config fields that do not change what a trial computes (left out of the study's fingerprint).
_NOT_RESULT = frozenset({"progress", "out", "resume", "device", "num_workers", "eval_batch_size", "data_root"})

Runner = Callable[..., Any]


def default_runner(config: Any, *, splits: tuple[Any, Any, Any]) -> Any:
    """The library's :func:`dmlbook.train.run` on ``splits`` (NMI skipped: the tuner reads MAP@R and Recall@k)."""
    from ..train import run

    return run(config, splits=splits, nmi=False)


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
        attrs = {"fold_scores": scores, "fold_epochs": epochs, "seconds": time.perf_counter() - started,
                 "diverged": diverged}
        return _Outcome(sum(scores) / len(scores), attrs)


def _resolved(config: Any) -> Any:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    return config.resolved() if hasattr(config, "resolved") else config


def _check_dataset(dataset: Any, name: str) -> Any:
    if dataset is None or not hasattr(dataset, "labels") or not hasattr(dataset, "subset"):
        raise TypeError(f"{name} must be a DMLDataset (with .labels and .subset); got {type(dataset).__name__}")
    return dataset


def _check_runner(runner: Runner | None) -> Runner:
    if runner is None:
        return default_runner
    if not callable(runner):
        raise TypeError(f"runner must be a function runner(config, *, splits) -> Run; got {type(runner).__name__}")
    return runner


def _check_space_for(loss: str, space: tuple[Param, ...], config: Any) -> None:
    """Every name of ``space`` must be a config field or an argument of the loss's constructor."""
    from ..losses import LOSSES

    fields = {f.name for f in dataclasses.fields(config)}
    accepted = set(inspect.signature(LOSSES[loss]).parameters) if loss in LOSSES else set()
    unknown = sorted(p.name for p in space if p.name not in fields and p.name not in accepted)
    if unknown:
        raise ValueError(f"space names {unknown}, which are neither arguments of loss {loss!r} "
                         f"({', '.join(sorted(accepted - {'self'}))}) nor config fields")


def _fingerprint(config: Any) -> str:
    """The config's result-changing fields as JSON (a resumed study must have been made with the same)."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NOT_RESULT}
    return json.dumps(fields, sort_keys=True, default=str)


def _open_study(url: str | None, name: str, settings: dict[str, Any]) -> Any:
    optuna = optuna_module()
    study = optuna.create_study(storage=open_storage(url), study_name=name, direction="maximize",
                                load_if_exists=True)
    stored = study.user_attrs.get("dmlbook")
    if stored is None:
        study.set_user_attr("dmlbook", settings)
    elif stored != json.loads(json.dumps(settings)):
        changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        raise ValueError(f"the study {name!r} in {url} was made with other settings ({', '.join(changed)} differ); "
                         "use another study_name or storage to start a new search")
    return study


def _records(study: Any, n_trials: int) -> list[TrialRecord]:
    states = optuna_module().trial.TrialState
    done = [t for t in counted(study) if t.state == states.COMPLETE][:n_trials]
    return [TrialRecord(number=t.number, params=dict(t.params), score=float(t.value),
                        fold_scores=list(t.user_attrs.get("fold_scores", [])),
                        fold_epochs=list(t.user_attrs.get("fold_epochs", [])),
                        seconds=float(t.user_attrs.get("seconds", 0.0)), state="complete",
                        diverged=bool(t.user_attrs.get("diverged", False))) for t in done]


def _progress_bar(total: int, *, enabled: bool, label: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="trial", leave=True)


def search(config: Any, *, train_set: Any, n_trials: int, folds: int = 4, sampler: str = "tpe", seed: int = 0,
           space: Sequence[Param] | None = None, lr_range: tuple[float, float] | None = None,
           metric: str = "map@r", startup_trials: int = 10, fold_groups: str | None = None,
           storage: str | os.PathLike | None = None, study_name: str | None = None, n_jobs: int = 1,
           threads: int | None = None, start_method: str | None = None, progress: bool = True,
           runner: Runner | None = None, select_on: str = "val", test_set: Any = None) -> SearchResult:
    """Tune ``config.loss`` with ``n_trials`` Optuna trials scored on class-disjoint folds of ``train_set``.

    Each trial samples the loss's hyper-parameters and the learning rate (:func:`~dmlbook.tuning.search_space`),
    trains one run per fold (``runner(config, splits=(fold_train, fold_val, fold_val))``: early stopping and the
    score on the same held-out classes) and scores the mean of ``metric`` over the folds. The folds depend only
    on ``train_set`` and ``seed``, so every trial (and every loss tuned with the same seed) meets the same folds.

    Args:
        config: a :class:`~dmlbook.train.TrainConfig` (resolved here); its ``loss`` is tuned, its other fields
            (epochs, patience, model, batch) are kept by every trial.
        train_set: the training classes, the only data the honest search sees.
        n_trials: the budget, the same for every loss; a study resumed from ``storage`` continues up to it.
        folds: k, the number of class-disjoint folds (>= 2; 4 in Musgrave et al.).
        sampler: ``"tpe"`` (Optuna's TPE after ``startup_trials`` random trials) or ``"random"``; seeded.
        seed: seeds the folds and the sampler: the same seed gives the same trials (one process).
        space: the searched parameters (default: :func:`~dmlbook.tuning.search_space` of the loss, the learning
            rate a decade either side of the config's, or ``lr_range``).
        metric: the run metric that scores a fold (``"map@r"``).
        fold_groups: a ``train_set.meta`` key (e.g. ``"alphabet"``): folds of whole groups instead of classes.
        storage: an SQLite file path (or an Optuna storage URL) that keeps the trials, so that an interrupted
            search resumes; None keeps them in memory (and ``n_jobs > 1`` then uses a temporary file).
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
        raise ValueError("the honest search (select_on='val') never sees the test classes: do not pass test_set "
                         "(select_on='test' is the test-set feedback arm)")
    if select_on == "test" and test_set is None:
        raise ValueError("select_on='test' (the test-set feedback arm) needs test_set")
    config = dataclasses.replace(_resolved(config), progress=False)
    train_set = _check_dataset(train_set, "train_set")
    n_trials = check_int(n_trials, "n_trials", 1)
    folds = check_int(folds, "folds", 2)
    sampler = check_choice(sampler, SAMPLERS, "sampler")
    seed = check_int(seed, "seed", 0)
    startup_trials = check_int(startup_trials, "startup_trials", 0)
    n_jobs = check_int(n_jobs, "n_jobs", 1)
    threads = None if threads is None else check_int(threads, "threads", 1)
    progress = check_flag(progress, "progress")
    runner = _check_runner(runner)
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a metric name such as 'map@r'; got {type(metric).__name__}")
    space = search_space(config.loss, lr=config.lr, lr_range=lr_range) if space is None else check_space(space)
    _check_space_for(config.loss, space, config)

    if select_on == "val":
        groups = None
        if fold_groups is not None:
            if fold_groups not in getattr(train_set, "meta", {}):
                raise ValueError(f"fold_groups={fold_groups!r} is not a meta key of train_set; it has: "
                                 f"{sorted(getattr(train_set, 'meta', {}))}")
            groups = train_set.meta[fold_groups]
        pairs = [fold_datasets(train_set, f) for f in class_folds(train_set.labels, k=folds, seed=seed,
                                                                   groups=groups)]
    else:
        pairs = [(train_set, _check_dataset(test_set, "test_set"))]
    objective = _Objective(config, pairs, runner, metric)

    study_name = study_name or f"{config.loss}-{select_on}-seed{seed}"
    settings = {"loss": config.loss, "select_on": select_on, "metric": metric,
                "folds": folds if select_on == "val" else None, "fold_groups": fold_groups, "sampler": sampler,
                "seed": seed, "startup_trials": startup_trials, "space": [p.as_dict() for p in space],
                "config": _fingerprint(config)}
    with _scratch_folder(storage is None and n_jobs > 1) as scratch, quiet_optuna():
        url = storage_url(os.path.join(scratch, "study.db") if scratch else storage)
        study = _open_study(url, study_name, settings)
        lock = StudyLock.for_study(url, study_name)
        with lock.held():
            fail_interrupted(study)  # trials left running by an interrupted search are retried
        bar = _progress_bar(n_trials, enabled=progress, label=f"tune {config.loss} ({select_on})")

        def show(current: Any = None) -> None:
            if bar is None:
                return
            records = _records(current or study, n_trials)
            bar.n = len(records)
            if records:
                bar.set_postfix({metric: f"{max(r.score for r in records):.4f}"}, refresh=False)
            bar.refresh()

        loop = {"n_trials": n_trials, "space": space, "evaluate": objective, "sampler": sampler, "seed": seed,
                "startup_trials": startup_trials}
        try:
            show()
            if n_jobs == 1:
                with _torch_threads(threads):
                    run_trials(study, lock=lock, on_trial=show, **loop)
            else:
                jobs = min(n_jobs, n_trials)
                per_job = threads or max(1, _usable_cores() // jobs)
                run_workers(n_jobs=jobs, threads=per_job, url=url, study_name=study_name, loop=loop,
                            start_method=start_method, on_poll=show)
        finally:
            if bar is not None:
                bar.close()
        records = _records(study, n_trials)
    best = max(records, key=lambda r: (r.score, -r.number))
    epochs = max(1, round(sum(best.fold_epochs) / len(best.fold_epochs))) if best.fold_epochs else config.epochs
    return SearchResult(loss=config.loss, select_on=select_on, metric=metric, n_trials=n_trials,
                        folds=folds if select_on == "val" else 1, sampler=sampler, seed=seed,
                        space=[p.as_dict() for p in space], trials=records, best_trial=best.number,
                        best_params=dict(best.params), best_score=best.score, best_epochs=int(epochs),
                        study_name=study_name, storage=None if storage is None else str(url))


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's thread count set to ``threads`` for a block (None: left as it is)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _scratch_folder(wanted: bool) -> Iterator[str | None]:
    """A temporary folder's path when ``wanted`` (deleted afterwards), else None."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="dmlbook-tuning-") as folder:
        yield folder


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, Sequence) and not isinstance(seeds, str):
        out = [check_int(s, "seeds[i]", 0) for s in seeds]
        if not out:
            raise ValueError("seeds must name at least one seed")
        return out
    return list(range(check_int(seeds, "seeds", 1)))


def final_runs(config: Any, params: dict[str, float], *, train_set: Any, test_set: Any,
               seeds: int | Sequence[int] = 5, epochs: int | None = None, runner: Runner | None = None
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
    config = dataclasses.replace(_resolved(config), progress=False)
    train_set = _check_dataset(train_set, "train_set")
    test_set = _check_dataset(test_set, "test_set")
    epochs = config.epochs if epochs is None else check_int(epochs, "epochs", 1)
    runner = _check_runner(runner)
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict of hyper-parameter values; got {type(params).__name__}")
    chosen = configure(dataclasses.replace(config, epochs=epochs, patience=0), params)
    runs = []
    for seed in _seeds(seeds):
        metrics = runner(dataclasses.replace(chosen, seed=seed), splits=(train_set, None, test_set)).metrics
        runs.append({"seed": seed, **{k: metrics[k] for k in FINAL_METRICS if metrics.get(k) is not None}})
    return FinalResult(params=dict(params), epochs=int(epochs), seeds=[r["seed"] for r in runs], runs=runs)


def load_train_test(config: Any) -> tuple[Any, Any]:
    """``(train, test)`` of the configured dataset: every training class (no validation carve-out) and the test
    classes, loaded once (the dataset's seed is ``config.seed``)."""
    from ..data import load_dataset

    config = _resolved(config)
    kwargs = dict(root=config.data_root, val_fraction=0.0, seed=config.seed, **config.data_args)
    return (load_dataset(config.dataset, split="train", **kwargs),
            load_dataset(config.dataset, split="test", **kwargs))


def tune(config: Any, *, n_trials: int, folds: int = 4, seeds: int | Sequence[int] = 5, sampler: str = "tpe",
         seed: int = 0, select_on: str = "val", train_set: Any = None, test_set: Any = None,
         final_epochs: int | str = "chosen", space: Sequence[Param] | None = None,
         lr_range: tuple[float, float] | None = None, metric: str = "map@r", startup_trials: int = 10,
         fold_groups: str | None = None, storage: str | os.PathLike | None = None, study_name: str | None = None,
         n_jobs: int = 1, threads: int | None = None, start_method: str | None = None, progress: bool = True,
         runner: Runner | None = None) -> TuneResult:
    """The whole protocol for one loss: :func:`search` on the training classes, then :func:`final_runs` of the
    chosen configuration with ``seeds`` on all training classes, measured once on the test classes.

    ``train_set`` / ``test_set``: the data (both or neither; default :func:`load_train_test` of ``config``).
    Only ``train_set`` reaches the search unless ``select_on="test"`` (THE TEST-SET FEEDBACK ARM, see
    :func:`search`). ``final_epochs``: ``"chosen"`` (the chosen trial's mean best epoch over its folds) or a
    number. The other arguments are :func:`search`'s.
    """
    if (train_set is None) != (test_set is None):
        raise TypeError("pass both train_set and test_set, or neither (then they are loaded from config)")
    if final_epochs != "chosen" and (isinstance(final_epochs, (str, bool)) or not isinstance(final_epochs, int)
                                     or final_epochs < 1):
        raise ValueError(f"final_epochs must be 'chosen' or an int >= 1; got {final_epochs!r}")
    if train_set is None:
        train_set, test_set = load_train_test(config)
    found = search(config, train_set=train_set, n_trials=n_trials, folds=folds, sampler=sampler, seed=seed,
                   space=space, lr_range=lr_range, metric=metric, startup_trials=startup_trials,
                   fold_groups=fold_groups, storage=storage, study_name=study_name, n_jobs=n_jobs, threads=threads,
                   start_method=start_method, progress=progress, runner=runner, select_on=select_on,
                   test_set=test_set if select_on == "test" else None)
    epochs = found.best_epochs if final_epochs == "chosen" else final_epochs
    final = final_runs(config, found.best_params, train_set=train_set, test_set=test_set, seeds=seeds,
                       epochs=epochs, runner=runner)
    return TuneResult(found, final)


__all__ = ["FINAL_METRICS", "SELECT_ON", "default_runner", "final_runs", "load_train_test", "search", "tune"]

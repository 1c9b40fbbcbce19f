"""The Optuna side of the tuner: storage, seeded samplers, a budgeted ask/tell loop and worker processes.

* **Storage.** A path is an SQLite file (``sqlite:///<absolute path>``); a string with ``://`` is any Optuna
  storage URL; None keeps the study in memory. A study in a file survives the process: running the same search
  again loads it and continues up to the budget.
* **Budget.** A trial is counted once it has finished (or is running); the loop stops when ``n_trials``
  are. The check and the next ``ask`` happen under a file lock, so parallel workers never start more than the
  budget.
* **Determinism.** Before each ``ask`` the sampler is rebuilt with a seed derived from ``(seed, i)``, ``i``
  the number of trials already counted, so trial ``i`` depends only on the seed and the trials before it: a
  search resumed after an interruption proposes what the uninterrupted one would have (one process).
* **Parallel.** ``n_jobs`` worker processes run the same loop against one storage file, each with its own
  torch thread count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .results import TrialRecord
from .space import Param

SAMPLERS = ("tpe", "random")


def optuna_module() -> Any:
    """The ``optuna`` module, or an ImportError that says how to install it."""
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("dmlbook.tuning needs Optuna: pip install optuna") from err
    return optuna


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial INFO lines off for the duration (the tuner shows its own progress)."""
    optuna = optuna_module()
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def trial_seed(seed: int, index: int) -> int:
    """The sampler seed of the ``index``-th trial of a search seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_sampler(kind: str, *, seed: int, startup_trials: int) -> Any:
    """``"tpe"`` (random for the first ``startup_trials`` trials, then TPE) or ``"random"``, seeded."""
    optuna = optuna_module()
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    return optuna.samplers.RandomSampler(seed=seed)


def storage_url(storage: str | os.PathLike | None) -> str | None:
    """``None`` (in memory), an Optuna URL as given, or ``sqlite:///<absolute path>`` for a path."""
    if storage is None:
        return None
    if isinstance(storage, str) and "://" in storage:
        return storage
    if not isinstance(storage, (str, os.PathLike)):
        raise TypeError(
            f"storage must be a path, an Optuna storage URL or None; got {type(storage).__name__}"
        )
    path = Path(storage).expanduser().resolve()
    if path.is_dir():
        raise ValueError(f"storage must be a file (e.g. {path / 'study.db'}); {path} is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(url: str | None) -> Any:
    """An Optuna storage for ``url`` (SQLite waits up to 60 s for a lock held by another worker)."""
    optuna = optuna_module()
    if url is None:
        return optuna.storages.InMemoryStorage()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


@dataclass(frozen=True)
class StudyLock:
    """An exclusive lock shared by every process working on one study: a file lock in the temporary folder
    (``path`` None for a study in memory: a no-op). ``with lock.held(): ...``."""

    path: Path | None

    @classmethod
    def for_study(cls, url: str | None, study_name: str) -> StudyLock:
        if url is None:
            return cls(None)
        digest = hashlib.sha1(f"{url}\0{study_name}".encode()).hexdigest()[:16]
        return cls(Path(tempfile.gettempdir()) / f"dmlbook-tuning-{digest}.lock")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        with open(self.path, "a+") as handle:  # closing the file releases the lock
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: one process at a time is the caller's job
                fcntl = None
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield


def counted(study: Any) -> list[Any]:
    """The trials that count against the budget (finished or running), by number."""
    states = optuna_module().trial.TrialState
    return sorted(
        study.get_trials(deepcopy=False, states=(states.COMPLETE, states.RUNNING)), key=lambda t: t.number
    )


def fail_interrupted(study: Any) -> int:
    """Mark the trials left running by an interrupted search as failed (they stop counting); how many."""
    states = optuna_module().trial.TrialState
    stale = study.get_trials(deepcopy=False, states=(states.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=states.FAIL, skip_if_finished=True)
    return len(stale)


def run_trials(
    study: Any,
    *,
    n_trials: int,
    space: Sequence[Param],
    evaluate: Callable[[dict[str, float]], Any],
    sampler: str,
    seed: int,
    startup_trials: int,
    lock: StudyLock,
    on_trial: Callable[[Any], None] | None = None,
) -> None:
    """Ask, evaluate and tell trials until ``n_trials`` are counted.

    ``evaluate(params)`` returns an object with ``score`` (float) and ``attrs`` (dict of the trial's user
    attributes). An exception (including KeyboardInterrupt) marks the trial failed and propagates.
    """
    states = optuna_module().trial.TrialState
    while True:
        with lock.held():
            index = len(counted(study))
            if index >= n_trials:
                return
            study.sampler = make_sampler(sampler, seed=trial_seed(seed, index), startup_trials=startup_trials)
            trial = study.ask()
            params = {p.name: p.suggest(trial) for p in space}
        try:
            outcome = evaluate(params)
        except BaseException:
            study.tell(trial, state=states.FAIL)
            raise
        for key, value in outcome.attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, outcome.score)
        if on_trial is not None:
            on_trial(study)


def _worker(url: str, study_name: str, threads: int, loop: dict[str, Any], errors: Any) -> None:
    """One worker process: its own torch thread count and storage connection, then :func:`run_trials`."""
    try:
        import torch

        torch.set_num_threads(threads)
        optuna = optuna_module()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=study_name, storage=open_storage(url))
        run_trials(study, lock=StudyLock.for_study(url, study_name), **loop)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises
        errors.put(traceback.format_exc())
        sys.exit(1)


def default_start_method() -> str:
    """``fork`` where the platform has it (the workers inherit the data without copying), else ``spawn``."""
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


def run_workers(
    *,
    n_jobs: int,
    threads: int,
    url: str,
    study_name: str,
    loop: dict[str, Any],
    start_method: str | None,
    on_poll: Callable[[], None],
) -> None:
    """Run :func:`run_trials` in ``n_jobs`` processes; ``on_poll()`` about twice a second meanwhile
    (progress).

    Raises RuntimeError with the first worker's traceback if any worker fails (the others are stopped).
    """
    ctx = mp.get_context(start_method or default_start_method())
    errors = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, study_name, threads, loop, errors), daemon=True)
        for _ in range(n_jobs)
    ]
    for w in workers:
        w.start()
    try:
        while any(w.is_alive() for w in workers) and not any(w.exitcode not in (None, 0) for w in workers):
            on_poll()
            time.sleep(0.5)
    except BaseException:  # e.g. KeyboardInterrupt: stop the workers (their running trials fail on resume)
        for w in workers:
            w.terminate()
        raise
    finally:
        failed = [w for w in workers if w.exitcode not in (None, 0)]
        for w in workers:
            if failed and w.is_alive():
                w.terminate()
            w.join()
        on_poll()
    if failed:
        try:
            message = errors.get(timeout=5)
        except queue.Empty:
            message = f"exit code {failed[0].exitcode}"
        raise RuntimeError(f"a tuning worker failed:\n{message}")


def open_study(url: str | None, name: str, settings: dict[str, Any]) -> Any:
    optuna = optuna_module()
    study = optuna.create_study(
        storage=open_storage(url), study_name=name, direction="maximize", load_if_exists=True
    )
    stored = study.user_attrs.get("dmlbook")
    if stored is None:
        study.set_user_attr("dmlbook", settings)
    elif stored != json.loads(json.dumps(settings)):
        changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        raise ValueError(
            f"the study {name!r} in {url} was made with other settings ({', '.join(changed)} differ); "
            "use another study_name or storage to start a new search"
        )
    return study


def trial_records(study: Any, n_trials: int) -> list[TrialRecord]:
    states = optuna_module().trial.TrialState
    done = [t for t in counted(study) if t.state == states.COMPLETE][:n_trials]
    return [
        TrialRecord(
            number=t.number,
            params=dict(t.params),
            score=float(t.value),
            fold_scores=list(t.user_attrs.get("fold_scores", [])),
            fold_epochs=list(t.user_attrs.get("fold_epochs", [])),
            seconds=float(t.user_attrs.get("seconds", 0.0)),
            state="complete",
            diverged=bool(t.user_attrs.get("diverged", False)),
        )
        for t in done
    ]


def progress_bar(total: int, *, enabled: bool, label: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="trial", leave=True)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
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
def scratch_folder(wanted: bool) -> Iterator[str | None]:
    """A temporary folder's path when ``wanted`` (deleted afterwards), else None."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="dmlbook-tuning-") as folder:
        yield folder


__all__ = [
    "SAMPLERS",
    "StudyLock",
    "counted",
    "default_start_method",
    "fail_interrupted",
    "make_sampler",
    "open_storage",
    "open_study",
    "optuna_module",
    "progress_bar",
    "quiet_optuna",
    "run_trials",
    "run_workers",
    "scratch_folder",
    "storage_url",
    "torch_threads",
    "trial_records",
    "trial_seed",
    "usable_cores",
]

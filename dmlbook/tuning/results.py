"""What the tuner returns: plain dataclasses of plain values, each with ``rows()`` / ``summary()`` for a
table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrialRecord:
    """One trial of a search.

    Attributes:
        number: Optuna's trial number (0, 1, ... in the order the trials were started).
        params: the sampled values (loss arguments and config fields such as ``lr``).
        score: the trial's score (mean over folds of the validation MAP@R; the test MAP@R in the test-feedback
            arm); None for a trial that did not finish (interrupted or failed).
        fold_scores: the score of each fold (one entry in the test-feedback arm).
        fold_epochs: the best epoch (by validation Recall@1, the run's early stopping) of each fold.
        seconds: wall time of the trial.
        state: ``"complete"``, ``"fail"`` or ``"running"``.
        diverged: a fold's training stopped being finite; the score is then 0.
    """

    number: int
    params: dict[str, float]
    score: float | None
    fold_scores: list[float] = field(default_factory=list)
    fold_epochs: list[int] = field(default_factory=list)
    seconds: float = 0.0
    state: str = "complete"
    diverged: bool = False


@dataclass
class SearchResult:
    """A finished search (:func:`~dmlbook.tuning.search`).

    Attributes:
        loss: the loss name; ``select_on``: ``"val"`` (the honest protocol) or ``"test"`` (test-set feedback).
        metric: the score's key in the run's metrics (``"map@r"``).
        n_trials, folds, sampler, seed: the budget and the search's settings.
        space: the searched ranges, one ``{"name", "low", "high", "log"}`` dict per parameter.
        trials: the counted trials (the first ``n_trials`` finished ones by number), in order.
        best_trial, best_params, best_score: the chosen trial (highest score; the earliest on a tie).
        best_epochs: the epochs for the final runs: the chosen trial's mean best epoch over its folds,
            rounded.
        study_name, storage: where the Optuna study lives (``storage`` None: in memory).
    """

    loss: str
    select_on: str
    metric: str
    n_trials: int
    folds: int
    sampler: str
    seed: int
    space: list[dict[str, Any]]
    trials: list[TrialRecord]
    best_trial: int
    best_params: dict[str, float]
    best_score: float
    best_epochs: int
    study_name: str
    storage: str | None

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per trial (``number score seconds diverged`` and each parameter), for a DataFrame."""
        return [
            {
                "number": t.number,
                "score": t.score,
                **t.params,
                "seconds": round(t.seconds, 3),
                "diverged": t.diverged,
            }
            for t in self.trials
        ]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of the finite ``values``."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


@dataclass
class FinalResult:
    """The chosen configuration trained on all training classes with several seeds, measured on the test
    classes.

    Attributes:
        params: the configuration's tuned values; ``epochs``: the epochs each run trained.
        seeds: the seeds, in order; ``runs``: the metrics of each seed's run (``seed`` and the run's test
            metrics: ``recall@1 ... map@r r_precision``, and ``epochs``, ``seconds``).
    """

    params: dict[str, float]
    epochs: int
    seeds: list[int]
    runs: list[dict[str, Any]]

    def mean_std(self, metric: str) -> tuple[float, float]:
        """Mean and standard deviation over the seeds of one metric (e.g. ``"map@r"``)."""
        if not self.runs or metric not in self.runs[0]:
            have = sorted(self.runs[0]) if self.runs else []
            raise KeyError(f"no metric {metric!r} in the final runs; they have: {have}")
        return mean_std([r[metric] for r in self.runs])

    def summary(self) -> dict[str, float]:
        """``{metric: mean, metric + "_std": std}`` for every numeric metric of the runs (not the seed and the
        epochs, which :attr:`epochs` gives)."""
        out: dict[str, float] = {}
        for key in self.runs[0] if self.runs else ():
            if key not in ("seed", "epochs") and all(
                isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool) for r in self.runs
            ):
                out[key], out[f"{key}_std"] = self.mean_std(key)
        return out


@dataclass
class TuneResult:
    """A search and the final runs of its chosen configuration (:func:`~dmlbook.tuning.tune`)."""

    search: SearchResult
    final: FinalResult

    @property
    def best_params(self) -> dict[str, float]:
        return self.search.best_params

    def summary(self) -> dict[str, Any]:
        """One flat row for a table of losses: the loss, the protocol, the budget, the chosen trial's
        selection score and the final runs' test means and standard deviations."""
        return {
            "loss": self.search.loss,
            "select_on": self.search.select_on,
            "n_trials": self.search.n_trials,
            "folds": self.search.folds,
            "selection_score": self.search.best_score,
            "epochs": self.final.epochs,
            "seeds": len(self.final.seeds),
            **self.final.summary(),
            **{f"param:{k}": v for k, v in self.search.best_params.items()},
        }


__all__ = ["FinalResult", "SearchResult", "TrialRecord", "TuneResult", "mean_std"]

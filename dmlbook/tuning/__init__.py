"""Tuning losses fairly: the protocol of Musgrave, Belongie & Lim, *A Metric Learning Reality Check* (ECCV
2020).

Every loss gets the same budget of Optuna trials (TPE or random, seeded) over its own hyper-parameters and the
learning rate (:data:`SPACES`); each trial is scored by MAP@R on held-out *training* classes, with
class-disjoint k-fold cross-validation (:func:`class_folds`) and early stopping on the same held-out fold; the
chosen configuration then trains with several seeds on all training classes and is measured once on the test
classes.

Python::

    from dmlbook.train import TrainConfig
    from dmlbook.tuning import tune

    result = tune(TrainConfig(dataset="cars196_features", loss="triplet"), n_trials=20, folds=4, seeds=5,
                  storage="build/tuning/triplet.db")      # interrupted? run it again: it resumes
    result.search.best_params, result.final.mean_std("map@r"), result.summary()

Modules: :mod:`~dmlbook.tuning.space` (the search spaces), :mod:`~dmlbook.tuning.folds` (the folds),
:mod:`~dmlbook.tuning.study` (Optuna: storage, samplers, workers), :mod:`~dmlbook.tuning.runner` (the runner
and :func:`final_runs`), :mod:`~dmlbook.tuning.tuner` (:func:`search`, :func:`tune`),
:mod:`~dmlbook.tuning.results` (the returned dataclasses).
"""

from __future__ import annotations

from .folds import Fold, class_folds, fold_datasets
from .results import FinalResult, SearchResult, TrialRecord, TuneResult
from .runner import FINAL_METRICS, default_runner, final_runs, load_train_test
from .space import SPACES, Param, configure, known_losses, search_space
from .study import SAMPLERS
from .tuner import SELECT_ON, search, tune

__all__ = [
    "FINAL_METRICS",
    "SAMPLERS",
    "SELECT_ON",
    "SPACES",
    "FinalResult",
    "Fold",
    "Param",
    "SearchResult",
    "TrialRecord",
    "TuneResult",
    "class_folds",
    "configure",
    "default_runner",
    "final_runs",
    "fold_datasets",
    "known_losses",
    "load_train_test",
    "search",
    "search_space",
    "tune",
]

"""The tuner end to end with the library's run() on tiny generated data (a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("optuna")

from dmlbook.train import TrainConfig
from dmlbook.tuning import load_train_test, tune

DATA = {"n_classes": 16, "n_per_class": 12, "dim": 8, "spread": 0.4}  # 8 training and 8 test classes
TINY = {
    "dataset": "synthetic",
    "epochs": 2,
    "patience": 1,
    "batches_per_epoch": 3,
    "batch_p": 4,
    "batch_k": 4,
    "device": "cpu",
    "progress": False,
    "data_args": DATA,
    "lr": 1e-2,
}


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


@pytest.mark.parametrize("loss", ["contrastive", "proxy_anchor"])
def test_tune_end_to_end_with_run(loss, tmp_path):
    config = TrainConfig(**TINY, loss=loss)
    train, test = load_train_test(config)
    assert not set(train.class_ids) & set(test.class_ids)
    result = tune(config, n_trials=2, folds=2, seeds=2, seed=0, storage=tmp_path / "study.db", progress=False)
    search = result.search
    assert len(search.trials) == 2 and search.n_trials == 2 and search.folds == 2
    for trial in search.trials:
        assert len(trial.fold_scores) == 2 and all(0.0 < s <= 1.0 for s in trial.fold_scores)
        assert trial.score == pytest.approx(np.mean(trial.fold_scores))
        assert all(1 <= e <= TINY["epochs"] for e in trial.fold_epochs)
        assert not trial.diverged
    assert set(search.best_params) == {p["name"] for p in search.space} and "lr" in search.best_params
    assert 1 <= search.best_epochs <= TINY["epochs"]
    assert result.final.seeds == [0, 1] and result.final.epochs == search.best_epochs
    for run in result.final.runs:
        assert 0.0 < run["map@r"] <= 1.0 and 0.0 <= run["recall@1"] <= 1.0
        assert run["epochs"] == search.best_epochs  # no early stopping in the final runs
    assert result.final.runs[0]["map@r"] != result.final.runs[1]["map@r"]  # the seeds differ
    again = tune(config, n_trials=2, folds=2, seeds=2, seed=0, storage=tmp_path / "study.db", progress=False)
    assert [t.params for t in again.search.trials] == [
        t.params for t in search.trials
    ]  # resumed: nothing new
    timeless = [
        [{k: v for k, v in r.items() if k != "seconds"} for r in x.final.runs] for x in (again, result)
    ]
    assert timeless[0] == timeless[1]  # seeded runs on CPU repeat exactly

"""dmlbook.experiments.tracking: tracked runs through dmlbook.train.run, one per method, and the curve readers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from dmlbook.experiments import tracking
from dmlbook.train import TRACKED_KEYS, BatchSnapshot, Run, TrainConfig, TrainingTracker, run


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _tiny_config(**kw) -> TrainConfig:
    base = {
        "dataset": "synthetic",
        "loss": "triplet",
        "loss_args": {"mining": "batch_hard"},
        "epochs": 2,
        "device": "cpu",
        "progress": False,
        "embedding_dim": 8,
        "batch_p": 4,
        "batch_k": 5,
        "data_args": {"n_classes": 8, "n_per_class": 20, "dim": 8, "spread": 0.4},
    }
    return TrainConfig(**{**base, **kw})


def _timeless(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_tracked_run_trains_exactly_like_an_untracked_run():
    tracker = TrainingTracker(every=3, eval_samples=50)
    snapshot = BatchSnapshot(step=2)
    tracked = tracking.train_tracked(
        _tiny_config(), name="bh", tracker=tracker, callbacks=[snapshot], embed_train=True
    )
    reference = run(_tiny_config())
    assert isinstance(tracked, Run) and tracked.name == "bh" and len(tracked.history) == 2
    assert tracked.metrics["recall@1"] == reference.metrics["recall@1"]
    assert _timeless(tracked.history) == _timeless(reference.history)
    torch.testing.assert_close(tracked.test_embeddings, reference.test_embeddings, rtol=0, atol=0)
    steps = [r["step"] for r in tracked.records]
    assert steps[0] == 0 and all(s % 3 == 0 for s in steps) and steps == sorted(steps)
    assert tracked.records == tracker.records
    for record in tracked.records:
        assert set(TRACKED_KEYS) <= set(record)
        for key in ("trivial_pairs", "trivial_triplets", "own_trivial", "recall_at_1"):
            assert 0.0 <= record[key] <= 1.0
    assert len(tracker.eval_set) == 50  # the run's test split, cut to eval_samples
    assert (
        snapshot.step_taken == 2 and snapshot.embeddings.shape == (20, 8) and snapshot.labels.shape == (20,)
    )
    assert tracked.train_embeddings.shape[0] == tracked.train_labels.shape[0] == 80
    assert tracked.test_embeddings.shape[0] == 80
    untracked = tracking.train_tracked(_tiny_config(epochs=1))
    assert untracked.records == [] and untracked.name == "triplet" and untracked.train_embeddings is None


def test_test_samples_evaluates_a_seeded_subset():
    config = _tiny_config(epochs=1)
    part = tracking.train_tracked(config, test_samples=30)
    again = tracking.train_tracked(config, test_samples=30)
    assert part.test_embeddings.shape[0] == part.metrics["test_samples"] == 30
    assert part.test_labels.tolist() == again.test_labels.tolist()
    full = tracking.train_tracked(config)
    assert full.test_embeddings.shape[0] == 80
    # the tracker measures on the same subset
    tracker = TrainingTracker(every=5, eval_samples=1000)
    tracking.train_tracked(config, tracker=tracker, test_samples=30)
    assert len(tracker.eval_set) == 30


def test_train_methods_share_batches_and_initial_weights():
    first, last = BatchSnapshot(step=0), BatchSnapshot(step=None)
    methods = {"batch_hard": ("triplet", {"mining": "batch_hard"}), "contrastive": ("contrastive", {})}
    runs = tracking.train_methods(
        _tiny_config(epochs=1),
        methods,
        track={"every": 2, "eval_samples": 40},
        callbacks={"contrastive": [first, last]},
        progress=False,
    )
    assert list(runs) == list(methods)
    assert [r.name for r in runs.values()] == list(methods)
    assert runs["batch_hard"].config.loss == "triplet" and runs["contrastive"].config.loss == "contrastive"
    # the batch of step 0 was embedded by the same untrained network in both runs (Recall@1 is measured after
    # the first update, so it differs)
    starts = [r.records[0] for r in runs.values()]
    assert starts[0]["trivial_pairs"] == starts[1]["trivial_pairs"]
    assert starts[0]["trivial_triplets"] == starts[1]["trivial_triplets"]
    assert (
        first.step_taken == 0 < last.step_taken and runs["batch_hard"].records[-1]["step"] <= last.step_taken
    )
    with pytest.raises(ValueError, match="unknown method"):
        tracking.train_methods(_tiny_config(), methods, callbacks={"nope": first}, progress=False)


def test_an_explicit_model_gets_only_its_own_model_args():
    from dmlbook.train import build_model_for, load_splits

    config = _tiny_config(
        model="small_cnn",
        model_args={"width": 4, "image_size": 8},
        data_args={"kind": "patterns", "n_classes": 6, "n_per_class": 10, "size": 8},
    )
    resolved = config.resolved()  # the synthetic dataset's MLP hidden_dims are not merged into small_cnn's
    assert resolved.model_args == {"width": 4, "image_size": 8}
    build_model_for(resolved, load_splits(resolved)[0][0][0])
    assert _tiny_config().resolved().model_args == {"hidden_dims": (64,)}  # the default model keeps them
    tracked = tracking.train_tracked(dataclasses.replace(config, epochs=1))
    assert 0.0 <= tracked.metrics["recall@1"] <= 1.0


def test_start_end_and_first_step_reaching():
    assert tracking.start_end([0.2, 0.5, 0.6, 0.9, float("nan")], window=2) == (0.2, 0.9)
    assert tracking.start_end([0.4], window=3) == (0.4, 0.4)
    with pytest.raises(ValueError):
        tracking.start_end([])
    with pytest.raises(ValueError, match="window"):
        tracking.start_end([1.0], window=0)
    assert tracking.first_step_reaching([0, 10, 20], [0.1, 0.5, 0.7], 0.5) == 10.0
    assert math.isnan(tracking.first_step_reaching([0, 10], [0.1, 0.2], 0.5))
    with pytest.raises(ValueError, match="shape"):
        tracking.first_step_reaching([0, 1], [0.1], 0.5)


def test_summarize_runs():
    class Metrics:
        def __init__(self, value):
            self.metrics = {"recall@1": value}

    out = tracking.summarize_runs({"a": Metrics(0.5), "b": Metrics(np.float64(0.25))}, "recall@1")
    assert out == {"a": 0.5, "b": 0.25} and all(type(v) is float for v in out.values())

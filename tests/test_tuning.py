"""The tuner (dmlbook.tuning) with a fast fake runner: folds, search spaces, Optuna search, resumption, the
test-set firewall, the test-set feedback arm, final runs, parallel workers and bad input."""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("optuna")

from dmlbook.data import DMLDataset
from dmlbook.losses import LOSSES
from dmlbook.train import TrainConfig
from dmlbook.tuning import (
    SPACES,
    Param,
    class_folds,
    configure,
    final_runs,
    fold_datasets,
    search,
    search_space,
    tune,
)

TRAIN_IDS = np.arange(100, 112)  # 12 training classes
TEST_IDS = np.arange(200, 208)  # 8 test classes


def dataset(class_ids: np.ndarray, per_class: int = 3, split: str = "train") -> DMLDataset:
    labels = np.repeat(np.arange(len(class_ids)), per_class)
    data = torch.randn(len(labels), 4, generator=torch.Generator().manual_seed(int(class_ids[0])))
    return DMLDataset(data, labels, class_ids=class_ids, split=split)


TRAIN, TEST = dataset(TRAIN_IDS), dataset(TEST_IDS, split="test")
CONFIG = TrainConfig(dataset="synthetic", loss="triplet", epochs=6, device="cpu", lr=1e-2, progress=False)


class FakeRunner:
    """Scores a config by a smooth function of its lr and margin, plus a little of the held-out class ids (so
    that folds matter); records every call's config and splits."""

    def __init__(
        self,
        *,
        fail_on_call: int | None = None,
        error: type[BaseException] = KeyboardInterrupt,
        diverge_above: float | None = None,
    ) -> None:
        self.calls: list[tuple[TrainConfig, tuple]] = []
        self.fail_on_call, self.error, self.diverge_above = fail_on_call, error, diverge_above

    def __call__(self, config, *, splits):
        self.calls.append((config, splits))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise self.error("stopped by the test")
        margin = config.loss_args.get("margin", 0.05)
        if self.diverge_above is not None and margin > self.diverge_above:
            raise FloatingPointError("diverged (test)")
        test = splits[2]
        score = (
            0.8 - 0.1 * (math.log10(config.lr) + 2) ** 2 - (margin - 0.2) ** 2 + 1e-4 * test.class_ids.mean()
        )
        metrics = {
            "map@r": score,
            "recall@1": min(1.0, score + 0.1),
            "best_epoch": 2 + len(self.calls) % 3,
            "epochs": config.epochs,
            "seconds": 0.01,
            "config": {},
        }
        return SimpleNamespace(metrics=metrics)


def params_of(result) -> list[dict[str, float]]:
    return [t.params for t in result.trials]


# --- folds --------------------------------------------------------------------------------------------------


def test_folds_are_class_disjoint_and_cover_the_training_classes():
    labels = np.repeat(np.arange(11), 4)
    folds = class_folds(labels, k=4, seed=3)
    assert len(folds) == 4
    seen = np.concatenate([f.val_classes for f in folds])
    assert sorted(seen.tolist()) == list(range(11))  # every class validates in exactly one fold
    assert sorted(len(f.val_classes) for f in folds) == [2, 3, 3, 3]
    for f in folds:
        assert not set(labels[f.train]) & set(labels[f.val])  # class-disjoint
        assert set(labels[f.val]) == set(f.val_classes.tolist())
        assert sorted(np.concatenate([f.train, f.val]).tolist()) == list(range(len(labels)))
    again = class_folds(labels, k=4, seed=3)
    assert all(np.array_equal(a.val, b.val) for a, b in zip(folds, again))
    other = class_folds(labels, k=4, seed=4)
    assert any(not np.array_equal(a.val_classes, b.val_classes) for a, b in zip(folds, other))


def test_fold_datasets_relabel_each_side():
    fold = class_folds(TRAIN.labels, k=3, seed=0)[1]
    train, val = fold_datasets(TRAIN, fold)
    assert (train.split, val.split) == ("train", "val")
    assert not set(train.class_ids) & set(val.class_ids)
    assert set(train.class_ids) | set(val.class_ids) == set(TRAIN_IDS)
    assert train.labels.max() == train.num_classes - 1 and val.labels.max() == val.num_classes - 1


def test_folds_keep_groups_whole():
    labels = np.repeat(np.arange(12), 2)
    groups = np.repeat(np.array(list("aabbccddeeff")), 2)  # two classes per group
    for f in class_folds(labels, k=3, seed=1, groups=groups):
        assert not set(groups[f.train]) & set(groups[f.val])
    with pytest.raises(ValueError, match="inside one group"):
        class_folds(labels, k=3, groups=np.arange(24) % 2)


@pytest.mark.parametrize(
    ("k", "error", "match"),
    [
        (1, ValueError, "k must be >= 2"),
        (0, ValueError, "k must be >= 2"),
        (True, TypeError, "k must be an int"),
        (2.0, TypeError, "k must be an int"),
        (4, ValueError, "at least 8 training classes"),  # 5 classes: more folds than 2 per fold allows
        (6, ValueError, "at least 12 training classes"),  # more folds than classes
    ],
)
def test_fold_errors(k, error, match):
    with pytest.raises(error, match=match):
        class_folds(np.repeat(np.arange(5), 3), k=k)


def test_fold_labels_must_be_integers():
    with pytest.raises(TypeError, match="labels must be a 1-D integer array"):
        class_folds(np.linspace(0, 1, 10), k=2)


# --- search spaces ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_has_a_space_of_real_arguments_holding_its_defaults(loss):
    accepted = inspect.signature(LOSSES[loss]).parameters
    for param in SPACES[loss]:
        assert param.name in accepted, f"{loss}: {param.name} is not a constructor argument"
        default = accepted[param.name].default
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert param.contains(default), f"{loss}: default {param.name}={default} outside the range"
    names = [p.name for p in search_space(loss, lr=1e-3)]
    assert names[-1] == "lr" and len(set(names)) == len(names)


def test_lr_is_searched_on_a_log_scale_around_the_configs_rate():
    lr = search_space("supcon", lr=1e-4)[-1]
    assert (lr.name, lr.log) == ("lr", True)
    assert lr.low == pytest.approx(1e-5) and lr.high == pytest.approx(1e-3)
    fixed = search_space("supcon", lr=1e-4, lr_range=(1e-6, 1e-2))[-1]
    assert (fixed.low, fixed.high) == (1e-6, 1e-2)


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"no search space for loss 'margin_loss'.*proxy_anchor.*triplet"):
        search_space("margin_loss")


def test_param_checks_its_range():
    with pytest.raises(ValueError, match="low must be < high"):
        Param("margin", 1.0, 0.5)
    with pytest.raises(ValueError, match="log-scale range needs low > 0"):
        Param("scale", 0.0, 10.0, log=True)
    with pytest.raises(ValueError, match="identifier"):
        Param("not a name", 0.0, 1.0)


def test_configure_sends_config_fields_to_the_config_and_the_rest_to_the_loss():
    config = TrainConfig(loss="osm_caa", loss_args={"detach_classifier": True, "lam": 0.9})
    out = configure(config, {"lr": 3e-4, "lam": 0.2, "margin": 1.5})
    assert out.lr == 3e-4
    assert out.loss_args == {"detach_classifier": True, "lam": 0.2, "margin": 1.5}
    assert config.loss_args == {"detach_classifier": True, "lam": 0.9}  # the original is untouched
    with pytest.raises(ValueError, match="finite number"):
        configure(config, {"lam": float("nan")})


# --- search: determinism, resumption, budget ----------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_same_seed_gives_the_same_trials(sampler):
    kwargs = {
        "train_set": TRAIN,
        "n_trials": 5,
        "folds": 3,
        "sampler": sampler,
        "startup_trials": 2,
        "progress": False,
    }
    first = search(CONFIG, seed=3, runner=FakeRunner(), **kwargs)
    second = search(CONFIG, seed=3, runner=FakeRunner(), **kwargs)
    other = search(CONFIG, seed=4, runner=FakeRunner(), **kwargs)
    assert params_of(first) == params_of(second)
    assert [t.score for t in first.trials] == [t.score for t in second.trials]
    assert params_of(first) != params_of(other)
    assert len(first.trials) == 5 and [t.number for t in first.trials] == list(range(5))
    assert set(first.best_params) == {"margin", "lr"}
    space = {p["name"]: p for p in first.space}
    for t in first.trials:
        assert space["margin"]["low"] <= t.params["margin"] <= space["margin"]["high"]
        assert len(t.fold_scores) == 3 and t.score == pytest.approx(np.mean(t.fold_scores))
    assert first.best_score == max(t.score for t in first.trials)


def test_each_trial_runs_once_per_fold_with_early_stopping_on_the_held_out_classes():
    runner = FakeRunner()
    result = search(CONFIG, train_set=TRAIN, n_trials=2, folds=3, seed=0, runner=runner, progress=False)
    assert len(runner.calls) == 2 * 3
    for config, (train, val, test) in runner.calls:
        assert val is test  # early stopping and the score on the same held-out fold
        assert not set(train.class_ids) & set(val.class_ids)
        assert config.progress is False and config.epochs == CONFIG.epochs
    held_out = [tuple(sorted(s[1].class_ids)) for _, s in runner.calls[:3]]
    assert sorted(c for fold in held_out for c in fold) == TRAIN_IDS.tolist()
    best = next(t for t in result.trials if t.number == result.best_trial)
    assert result.best_epochs == round(np.mean(best.fold_epochs))


def test_resuming_from_the_sqlite_file_continues_rather_than_restarting(tmp_path):
    db = tmp_path / "study.db"
    kwargs = {"train_set": TRAIN, "folds": 3, "seed": 7, "startup_trials": 2, "progress": False}
    first_runner, second_runner, third_runner = FakeRunner(), FakeRunner(), FakeRunner()
    first = search(CONFIG, n_trials=3, storage=db, runner=first_runner, **kwargs)
    assert db.exists() and len(first_runner.calls) == 3 * 3
    resumed = search(CONFIG, n_trials=6, storage=db, runner=second_runner, **kwargs)
    assert len(second_runner.calls) == 3 * 3  # only the 3 missing trials were trained
    assert params_of(resumed)[:3] == params_of(first)
    straight = search(CONFIG, n_trials=6, runner=FakeRunner(), **kwargs)  # in memory, uninterrupted
    assert params_of(resumed) == params_of(straight)
    done = search(CONFIG, n_trials=6, storage=db, runner=third_runner, **kwargs)
    assert third_runner.calls == [] and params_of(done) == params_of(resumed)


def test_an_interrupted_trial_is_retried_on_resume(tmp_path):
    db = tmp_path / "study.db"
    kwargs = {
        "train_set": TRAIN,
        "n_trials": 4,
        "folds": 2,
        "seed": 1,
        "startup_trials": 1,
        "progress": False,
        "storage": db,
    }
    with pytest.raises(KeyboardInterrupt):
        search(CONFIG, runner=FakeRunner(fail_on_call=6), **kwargs)  # the 3rd trial's 2nd fold
    resumed = search(CONFIG, runner=FakeRunner(), **kwargs)
    straight = search(CONFIG, runner=FakeRunner(), **{**kwargs, "storage": None})
    assert params_of(resumed) == params_of(straight)
    assert [t.number for t in resumed.trials] == [0, 1, 3, 4]  # trial 2 failed and was replaced


def test_a_study_made_with_other_settings_is_not_resumed(tmp_path):
    db = tmp_path / "study.db"
    search(CONFIG, train_set=TRAIN, n_trials=1, folds=3, storage=db, runner=FakeRunner(), progress=False)
    with pytest.raises(ValueError, match="other settings.*folds"):
        search(CONFIG, train_set=TRAIN, n_trials=2, folds=2, storage=db, runner=FakeRunner(), progress=False)


def test_a_diverged_configuration_scores_zero_and_the_search_goes_on():
    result = search(
        CONFIG,
        train_set=TRAIN,
        n_trials=6,
        folds=2,
        sampler="random",
        seed=0,
        progress=False,
        runner=FakeRunner(diverge_above=0.05),
    )
    diverged = [t for t in result.trials if t.diverged]
    assert diverged and len(result.trials) == 6
    assert all(t.score == 0.0 for t in diverged)
    assert all(t.params["margin"] > 0.05 for t in diverged)


# --- the test-set firewall and the feedback arm -------------------------------------------------------------


def test_test_labels_never_reach_the_search():
    runner = FakeRunner()
    result = tune(
        CONFIG, n_trials=3, folds=3, seeds=2, train_set=TRAIN, test_set=TEST, runner=runner, progress=False
    )
    search_calls, final_calls = runner.calls[:9], runner.calls[9:]
    for _, splits in search_calls:
        for part in splits:
            assert set(part.class_ids) <= set(TRAIN_IDS)  # no test class in any split the objective saw
    assert len(final_calls) == 2
    for config, (train, val, test) in final_calls:
        assert train is TRAIN and val is None and test is TEST
    assert result.search.select_on == "val"


def test_the_honest_search_refuses_the_test_set():
    with pytest.raises(ValueError, match="never sees the test classes"):
        search(CONFIG, train_set=TRAIN, test_set=TEST, n_trials=1, runner=FakeRunner(), progress=False)
    with pytest.raises(TypeError, match="both train_set and test_set"):
        tune(CONFIG, n_trials=1, train_set=TRAIN, runner=FakeRunner(), progress=False)


def test_the_test_set_feedback_arm_scores_trials_on_the_test_classes():
    runner = FakeRunner()
    result = tune(
        CONFIG,
        n_trials=3,
        seeds=1,
        select_on="test",
        train_set=TRAIN,
        test_set=TEST,
        runner=runner,
        progress=False,
    )
    for _, (train, val, test) in runner.calls[:3]:
        assert train is TRAIN and val is TEST and test is TEST
    assert result.search.select_on == "test" and result.search.folds == 1
    assert all(len(t.fold_scores) == 1 for t in result.search.trials)
    with pytest.raises(ValueError, match="needs test_set"):
        search(CONFIG, train_set=TRAIN, n_trials=1, select_on="test", runner=FakeRunner(), progress=False)


# --- final runs ---------------------------------------------------------------------------------------------


def test_final_runs_train_the_chosen_configuration_with_each_seed():
    runner = FakeRunner()
    result = tune(
        CONFIG, n_trials=2, folds=2, seeds=5, train_set=TRAIN, test_set=TEST, runner=runner, progress=False
    )
    finals = runner.calls[-5:]
    assert [c.seed for c, _ in finals] == [0, 1, 2, 3, 4]
    for config, _ in finals:
        assert config.epochs == result.search.best_epochs and config.patience == 0
        assert (
            config.lr == result.best_params["lr"]
            and config.loss_args["margin"] == result.best_params["margin"]
        )
    scores = [r["map@r"] for r in result.final.runs]
    mean, std = result.final.mean_std("map@r")
    assert mean == pytest.approx(np.mean(scores)) and std == pytest.approx(np.std(scores, ddof=1))
    row = result.summary()
    assert row["loss"] == "triplet" and row["n_trials"] == 2 and row["map@r"] == pytest.approx(mean)
    assert row["param:margin"] == result.best_params["margin"]
    fixed = final_runs(
        CONFIG, {"margin": 0.1}, train_set=TRAIN, test_set=TEST, seeds=[7, 9], epochs=3, runner=FakeRunner()
    )
    assert fixed.seeds == [7, 9] and fixed.epochs == 3


# --- parallel workers ---------------------------------------------------------------------------------------


def test_parallel_workers_share_the_study_and_keep_the_budget(tmp_path):
    db = tmp_path / "study.db"
    result = search(
        CONFIG,
        train_set=TRAIN,
        n_trials=5,
        folds=2,
        seed=0,
        n_jobs=2,
        threads=1,
        storage=db,
        runner=FakeRunner(),
        progress=False,
    )
    assert len(result.trials) == 5
    import optuna

    study = optuna.load_study(study_name=result.study_name, storage=f"sqlite:///{db}")
    assert len(study.trials) == 5  # no worker started a sixth
    assert all(t.state.name == "COMPLETE" for t in study.trials)


def test_a_failing_worker_is_reported():
    with pytest.raises(RuntimeError, match="tuning worker failed(.|\n)*broken runner"):
        search(
            CONFIG,
            train_set=TRAIN,
            n_trials=3,
            folds=2,
            n_jobs=2,
            threads=1,
            progress=False,
            runner=FakeRunner(fail_on_call=1, error=lambda msg: ValueError("broken runner")),
        )


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_trials": 0}, ValueError, "n_trials must be >= 1"),
        ({"folds": 1}, ValueError, "folds must be >= 2"),
        ({"folds": 7}, ValueError, "at least 14 training classes"),
        ({"sampler": "grid"}, ValueError, "sampler must be one of 'tpe', 'random'"),
        ({"select_on": "oracle"}, ValueError, "select_on must be one of 'val', 'test'"),
        ({"n_jobs": 0}, ValueError, "n_jobs must be >= 1"),
        ({"runner": 42}, TypeError, "runner must be a function"),
        ({"space": [Param("temperature", 0.1, 1.0)]}, ValueError, "neither arguments of loss 'triplet'"),
        ({"space": Param("margin", 0.1, 1.0)}, TypeError, "space must be a sequence of Param"),
        ({"fold_groups": "alphabet"}, ValueError, "not a meta key of train_set"),
        ({"train_set": np.arange(10)}, TypeError, "train_set must be a DMLDataset"),
    ],
)
def test_bad_input_is_refused_before_training(kwargs, error, match):
    runner = FakeRunner()
    args = {"train_set": TRAIN, "n_trials": 2, "runner": runner, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        search(CONFIG, **args)
    assert runner.calls == []


def test_bad_final_epochs_is_refused():
    with pytest.raises(ValueError, match="final_epochs must be 'chosen' or an int"):
        tune(CONFIG, n_trials=1, final_epochs="best", train_set=TRAIN, test_set=TEST, runner=FakeRunner())

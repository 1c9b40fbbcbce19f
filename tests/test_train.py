"""The training loop and its command line on small generated data: metrics, files, determinism, resume,
early stopping and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from dmlbook.losses import LOSSES
from dmlbook.train import METRIC_KEYS, TrainConfig, main, train

FAST = {
    "dataset": "synthetic",
    "loss": "contrastive",
    "epochs": 3,
    "batches_per_epoch": 4,
    "progress": False,
    "data_args": {"n_classes": 8, "n_per_class": 20, "dim": 8, "spread": 0.4},
}

WIDE = {**FAST["data_args"], "n_classes": 16}  # 8 training classes: 2 for validation


def run(**overrides):
    return train(TrainConfig(**{**FAST, **overrides}))


def test_metrics_and_files(tmp_path):
    result = run(out=str(tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in (*METRIC_KEYS, "val_recall@1", "epochs", "seconds", "config"):
        assert key in metrics, key
    for key in METRIC_KEYS:
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["recall@1"] <= metrics["recall@2"] <= metrics["recall@4"] <= metrics["recall@8"]
    assert metrics["epochs"] == 3 and metrics["config"]["loss"] == "contrastive"
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert (tmp_path / "checkpoint.pt").exists()
    assert result.metrics["recall@1"] == metrics["recall@1"]


def test_training_separates_the_training_classes():
    from dmlbook.evaluation import evaluate
    from dmlbook.train import embed, load_splits

    noisy = {**FAST["data_args"], "spread": 0.8}
    trained = run(epochs=8, data_args=noisy, lr=1e-2, embedding_dim=8)
    untrained = run(epochs=1, batches_per_epoch=1, lr=1e-9, data_args=noisy, embedding_dim=8)
    train_set = load_splits(trained.config)[0]
    scores = [evaluate(*embed(r.model, train_set), nmi=False)["recall@1"] for r in (trained, untrained)]
    assert scores[0] > scores[1] + 0.1
    assert trained.history[-1]["loss"] < trained.history[0]["loss"]


def test_same_seed_same_metrics_other_seed_differs():
    a, b, c = run(seed=3), run(seed=3), run(seed=4)

    def timeless(history):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert a.metrics["recall@1"] == b.metrics["recall@1"] and timeless(a.history) == timeless(b.history)
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_resume_reaches_the_same_result(tmp_path):
    whole = run(epochs=4, val_fraction=0.25, data_args=WIDE, out=str(tmp_path / "whole"))

    def interrupt(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            TrainConfig(
                **{**FAST, "epochs": 4, "val_fraction": 0.25, "data_args": WIDE, "out": str(tmp_path / "cut")}
            ),
            on_epoch=interrupt,
        )
    resumed = run(epochs=4, val_fraction=0.25, data_args=WIDE, out=str(tmp_path / "cut"), resume=True)
    assert resumed.history == [{**h, "seconds": r["seconds"]} for h, r in zip(whole.history, resumed.history)]
    for key in METRIC_KEYS:
        assert resumed.metrics[key] == pytest.approx(whole.metrics[key], abs=1e-12), key


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run(out=str(tmp_path), resume=True)


def test_early_stopping_restores_the_best_epoch():
    result = run(
        epochs=30, patience=2, val_fraction=0.25, data_args=WIDE, lr=0.3
    )  # a large lr: validation stops improving
    vals = [h["val_recall@1"] for h in result.history]
    assert result.metrics["stopped_early"] and len(vals) < 30
    best = max(vals)
    assert result.metrics["val_recall@1"] == best
    assert vals.index(best) + 1 == result.metrics["best_epoch"]
    assert all(v <= best for v in vals[result.metrics["best_epoch"] :])


def test_on_step_sees_the_batch():
    seen = []
    train(
        TrainConfig(**{**FAST, "epochs": 1, "batch_p": 4, "batch_k": 5}),
        on_step=lambda info: seen.append(
            (info.step, tuple(info.embeddings.shape), info.embeddings.requires_grad)
        ),
    )
    assert seen == [(i, (20, 2), False) for i in range(4)]


@pytest.mark.parametrize("loss", list(LOSSES))
def test_every_loss_trains(loss):
    result = run(loss=loss, epochs=1, batches_per_epoch=2)
    assert 0 <= result.metrics["recall@1"] <= 1
    params = list(result.loss_fn.parameters())
    # the CAA classifier, and the classifier / centres / proxies of the losses that need the classes, are trained
    # with the model
    assert (len(params) > 0) == (loss == "osm_caa" or getattr(LOSSES[loss], "needs_classes", False))
    assert all(p.grad is not None for p in params)


def test_loss_and_model_arguments_reach_their_objects():
    result = run(
        loss="triplet",
        loss_args={"margin": 0.2, "mining": "batch_hard"},
        model="mlp",
        model_args={"hidden_dims": (16,)},
        embedding_dim=5,
        epochs=1,
        batches_per_epoch=1,
    )
    assert result.loss_fn.margin == 0.2 and result.loss_fn.mining == "batch_hard"
    assert result.model(torch.zeros(3, 8)).shape == (3, 5)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"dataset": "mnist"}, "dataset"),
        ({"loss": "tripplet"}, "loss"),
        ({"loss_args": {"margn": 0.1}}, "margn.*accepts: pos_margin"),
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"model": "vgg"}, "model"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ],
)
def test_bad_config_is_a_clear_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**FAST, **overrides}).resolved()


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="cuda"):
        run(device="cuda")


def test_command_line(tmp_path, capsys):
    code = main(
        [
            "--dataset",
            "synthetic",
            "--loss",
            "triplet",
            "--epochs",
            "2",
            "--out",
            str(tmp_path),
            "--loss-arg",
            "mining=semi_hard",
            "--data-arg",
            "n_classes=6",
            "--batches-per-epoch",
            "3",
            "--no-progress",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["config"]["loss_args"] == {"mining": "semi_hard"} and metrics["epochs"] == 2
    assert '"recall@1"' in capsys.readouterr().out


def test_command_line_error_names_the_problem(tmp_path, capsys):
    code = main(["--dataset", "synthetic", "--loss", "nope", "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "loss" in capsys.readouterr().err


def test_missing_dataset_folder_is_a_clear_error(tmp_path, capsys):
    code = main(
        [
            "--dataset",
            "cub200",
            "--loss",
            "contrastive",
            "--data-root",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "cub200" in err.lower()


def test_a_single_validation_class_is_a_clear_error():
    with pytest.raises(ValueError, match="val_fraction"):
        run(val_fraction=0.2)  # 4 training classes -> 0 or 1 held out

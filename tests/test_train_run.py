"""dmlbook.train.run: the one experiment engine, its Run, and the callbacks that watch it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from dmlbook.losses import ContrastiveLoss, TripletMarginLoss
from dmlbook.train import (
    METRIC_KEYS,
    BatchSnapshot,
    Callback,
    EmbeddingSnapshots,
    MiningTrace,
    RetrievalTracker,
    Run,
    RunContext,
    StepInfo,
    TrainConfig,
    TrainingTracker,
    load_splits,
    make_optimizer,
    run,
    train,
)

DATA = {"n_classes": 8, "n_per_class": 20, "dim": 8, "spread": 0.4}
FAST = {
    "dataset": "synthetic",
    "loss": "contrastive",
    "epochs": 2,
    "batches_per_epoch": 3,
    "progress": False,
    "batch_p": 4,
    "batch_k": 5,
    "device": "cpu",
    "data_args": DATA,
}


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _timeless(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


class Recorder(Callback):
    """Records every hook call with what it received."""

    def __init__(self):
        self.calls = []

    def on_run_start(self, ctx):
        self.calls.append(("start", ctx))

    def on_step(self, info):
        self.calls.append(("step", info))

    def on_epoch(self, record):
        self.calls.append(("epoch", record))

    def on_run_end(self, result):
        self.calls.append(("end", result))


def test_run_equals_train_and_writes_nothing(tmp_path):
    config = TrainConfig(**FAST, out=str(tmp_path / "out"))
    ran = run(config)
    assert not (tmp_path / "out").exists()  # run() writes nothing; train() writes OUT/
    trained = train(config)
    assert isinstance(ran, Run) and isinstance(trained, Run)
    assert {k: ran.metrics[k] for k in METRIC_KEYS} == {k: trained.metrics[k] for k in METRIC_KEYS}
    assert _timeless(ran.history) == _timeless(trained.history)
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(on_disk) == set(ran.metrics)  # Run.metrics has the keys of metrics.json


def test_run_fields_and_test_embeddings():
    result = run(TrainConfig(**FAST), embed_train=True)
    _, _, test_set = load_splits(result.config)
    assert result.test_embeddings.shape == (len(test_set), result.config.embedding_dim)
    assert result.test_labels.tolist() == test_set.labels.tolist()
    assert result.train_embeddings.shape[0] == result.metrics["train_samples"]
    assert result.metrics["test_samples"] == len(test_set) and result.warmup is None
    assert result.config.batch_p == 4 and result.metrics["epochs"] == 2 == len(result.history)
    from dmlbook.evaluation import evaluate

    again = evaluate(result.test_embeddings, result.test_labels, seed=result.config.seed)
    assert again["recall@1"] == result.metrics["recall@1"]  # the embeddings are the ones measured


def test_overrides_and_nmi_switch():
    result = run(TrainConfig(**FAST), seed=5, nmi=False)
    assert result.config.seed == 5 and result.metrics["nmi"] is None
    assert 0.0 <= result.metrics["recall@1"] <= 1.0


def test_callbacks_receive_the_documented_arguments():
    rec = Recorder()
    result = run(TrainConfig(**FAST), callbacks=[rec])
    kinds = [k for k, _ in rec.calls]
    assert kinds == ["start", "step", "step", "step", "epoch", "step", "step", "step", "epoch", "end"]
    ctx = rec.calls[0][1]
    assert isinstance(ctx, RunContext) and ctx.model is result.model and ctx.loss_fn is result.loss_fn
    assert ctx.config is result.config and ctx.device == torch.device("cpu") and ctx.val_set is None
    assert len(ctx.test_set) == result.metrics["test_samples"]
    steps = [info for kind, info in rec.calls if kind == "step"]
    assert all(isinstance(s, StepInfo) for s in steps)
    assert [(s.epoch, s.step) for s in steps] == [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5)]
    assert all(
        s.embeddings.shape == (20, 2) and not s.embeddings.requires_grad and s.labels.shape == (20,)
        for s in steps
    )
    epochs = [r for kind, r in rec.calls if kind == "epoch"]
    assert epochs == result.history and epochs[0] is not result.history[0]  # copies of the history records
    assert rec.calls[-1][1] is result


def test_a_plain_function_is_an_on_step_callback_and_bad_callbacks_are_refused():
    seen = []
    run(TrainConfig(**FAST), callbacks=[lambda info: seen.append(info.step)])
    assert seen == list(range(6))
    with pytest.raises(TypeError, match="callback"):
        run(TrainConfig(**FAST), callbacks=[42])
    with pytest.raises(TypeError, match="sequence"):
        run(TrainConfig(**FAST), callbacks=Recorder())


def test_given_splits_model_and_loss_are_used():
    config = TrainConfig(**FAST).resolved()
    train_set, _, test_set = load_splits(config)
    small_test = test_set.subset(list(range(30)))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6))
    loss_fn = TripletMarginLoss(margin=0.3)
    rec = Recorder()
    result = run(config, model=model, loss_fn=loss_fn, splits=(train_set, None, small_test), callbacks=[rec])
    assert result.model is model and result.loss_fn is loss_fn
    assert result.test_embeddings.shape == (30, 6) and result.metrics["test_samples"] == 30
    assert rec.calls[1][1].loss_fn is loss_fn and rec.calls[1][1].embeddings.shape[1] == 6
    no_test = run(config, splits=(train_set, None, None))
    assert no_test.test_embeddings is None and all(no_test.metrics[k] is None for k in METRIC_KEYS)
    with pytest.raises(TypeError, match="splits"):
        run(config, splits=(train_set, None))


def test_p_is_clamped_with_a_message(capsys):
    result = run(TrainConfig(**{**FAST, "batch_p": 1000, "progress": True}))
    assert result.config.batch_p == 4  # 8 classes, half of them for training
    err = capsys.readouterr().err
    assert "batch_p 1000 reduced to 4" in err
    quiet = run(TrainConfig(**{**FAST, "batch_p": 1000}))  # a quiet run (a chapter's many runs) says nothing
    assert quiet.config.batch_p == 4 and "reduced" not in capsys.readouterr().err


def test_watched_run_trains_exactly_like_an_unwatched_one():
    plain = run(TrainConfig(**FAST))
    tracker = TrainingTracker(every=2, eval_samples=40, keep_batches=True)
    curve = RetrievalTracker(every=2, samples=40, at_start=True)
    snaps = EmbeddingSnapshots(steps=(3,), samples=30)
    trace = MiningTrace(every=1)
    watched = run(TrainConfig(**FAST), callbacks=[tracker, curve, snaps, trace])
    assert _timeless(watched.history) == _timeless(plain.history)
    assert {k: watched.metrics[k] for k in METRIC_KEYS} == {k: plain.metrics[k] for k in METRIC_KEYS}


def test_training_tracker_records_and_keeps_batches():
    tracker = TrainingTracker(every=2, eval_samples=40, keep_batches=True)
    run(TrainConfig(**FAST), callbacks=[tracker])
    assert [r["step"] for r in tracker.records] == [0, 2, 4]
    assert len(tracker.eval_set) == 40  # the run's test split, cut to eval_samples
    for record in tracker.records:
        for key in ("trivial_pairs", "trivial_triplets", "own_trivial", "recall_at_1"):
            assert 0.0 <= record[key] <= 1.0, key
    assert sorted(tracker.batches) == [0, 2, 4] and tracker.batches[2][0].shape == (20, 2)
    # the probe's trivial pairs, recomputed on the kept batch, are the recorded ones
    from dmlbook.diagnostics import trivial_fractions

    emb, lab = tracker.batches[4]
    assert trivial_fractions(emb, lab)["pairs"] == tracker.records[2]["trivial_pairs"]
    with pytest.raises(ValueError, match="every"):
        TrainingTracker(every=0)


def test_retrieval_tracker_every_steps_and_every_epoch():
    steps = RetrievalTracker(every=2, samples=40, at_start=True)
    epochs = RetrievalTracker(samples=40, ks=(1, 2))
    result = run(TrainConfig(**FAST), callbacks=[steps, epochs])
    assert [r["steps"] for r in steps.records] == [0, 2, 4, 6]
    assert [(r["steps"], r["epoch"]) for r in epochs.records] == [(3, 1), (6, 2)]
    assert {"recall@1", "recall@2", "map@r", "r_precision"} <= set(epochs.records[0])
    assert all(0 <= r["map@r"] <= 1 for r in steps.records)
    x, y = steps.series("recall@1")
    assert x.tolist() == [0, 2, 4, 6] and len(y) == 4
    if result.config.val_fraction == 0:  # the last model measured after the last step is the final model
        assert steps.records[-1]["recall@1"] == epochs.records[-1]["recall@1"]


def test_embedding_snapshots_follow_the_model():
    snaps = EmbeddingSnapshots(steps=(3,), samples=30, seed=1)
    result = run(TrainConfig(**FAST), callbacks=[snaps])
    assert snaps.names == ["start", "step 3", "end"]
    assert all(s.shape == (30, 2) for s in snaps.snapshots) and snaps.labels.shape == (30,)
    assert not torch.equal(snaps.snapshots[0], snaps.snapshots[-1])  # training moved the embedding
    from dmlbook.train import embed

    final, _ = embed(result.model, snaps.dataset)
    torch.testing.assert_close(snaps.snapshots[-1], final)


def test_mining_trace_default_and_custom_measure():
    trace = MiningTrace(every=2)
    custom = MiningTrace(measure=lambda info: {"mean_norm": info.embeddings.norm(dim=1).mean()})
    run(
        TrainConfig(**{**FAST, "loss": "triplet", "loss_args": {"mining": "batch_hard"}}),
        callbacks=[trace, custom],
    )
    assert [r["step"] for r in trace.records] == [0, 2, 4]
    for r in trace.records:
        assert 0.0 <= r["trivial_fraction"] <= 1.0 and 0.0 <= r["active_negative"] <= 1.0
        assert r["loss_details"] == pytest.approx(
            r["loss"], rel=1e-5, abs=1e-7
        )  # the batch's loss, re-measured
    assert len(custom.records) == 6 and all(isinstance(r["mean_norm"], float) for r in custom.records)


def test_mining_trace_needs_details_or_a_measure():
    class NoDetails(nn.Module):
        def forward(self, embeddings, labels):
            return ContrastiveLoss()(embeddings, labels)

    with pytest.raises(TypeError, match="measure="):
        run(TrainConfig(**FAST), loss_fn=NoDetails(), callbacks=[MiningTrace()])


def test_train_keeps_on_step_and_on_epoch():
    seen, records, snapshot = [], [], BatchSnapshot(step=1)
    result = train(
        TrainConfig(**FAST),
        on_step=lambda info: seen.append(info.step),
        on_epoch=records.append,
        callbacks=[snapshot],
    )
    assert seen == list(range(6)) and records == result.history
    assert snapshot.step_taken == 1 and snapshot.embeddings.shape == (20, 2)


def test_loss_lr_mult_from_the_config_or_the_loss():
    model = nn.Linear(4, 2)

    class WithProxies(nn.Module):
        lr_mult = 100.0

        def __init__(self):
            super().__init__()
            self.proxies = nn.Parameter(torch.zeros(3, 2))

    config = TrainConfig(lr=1e-3).resolved()
    assert config.loss_lr_mult is None
    assert make_optimizer(model, WithProxies(), config).param_groups[-1]["lr"] == pytest.approx(0.1)
    plain = nn.Module()
    plain.w = nn.Parameter(torch.zeros(2))
    assert make_optimizer(model, plain, config).param_groups[-1]["lr"] == pytest.approx(1e-3)
    given = TrainConfig(lr=1e-3, loss_lr_mult=10.0).resolved()
    assert make_optimizer(model, WithProxies(), given).param_groups[-1]["lr"] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="loss_lr_mult"):
        TrainConfig(loss_lr_mult=0.0).resolved()


def test_callbacks_on_images_leave_the_augmentation_untouched(tmp_path):
    """Embedding a folder dataset draws a DataLoader seed from torch's generator; the callbacks restore it, so the
    random crops of the next training batches (and so the whole run) stay those of an unwatched run."""
    import numpy as np
    from support import noisy_grey, write_image_folder

    rng = np.random.default_rng(0)
    scenes = write_image_folder(
        tmp_path / "scenes", lambda k, j: noisy_grey(rng, 40 * k, 30, (40, 48)), classes=6, per_class=4
    )
    config = TrainConfig(
        dataset="folder",
        data_root=str(scenes),
        loss="contrastive",
        model="small_cnn",
        model_args={"width": 4},
        pretrained="none",
        image_size=32,
        epochs=1,
        batches_per_epoch=3,
        batch_p=2,
        batch_k=2,
        val_fraction=0.0,
        embedding_dim=4,
        progress=False,
        device="cpu",
        num_workers=0,
    )  # the crops draw from the main process's generator
    losses = []
    run(config, callbacks=[lambda info: losses.append(info.loss)])
    watched = []
    run(
        config,
        callbacks=[
            RetrievalTracker(every=1, samples=None),
            EmbeddingSnapshots(steps=(1, 2)),
            lambda info: watched.append(info.loss),
        ],
    )
    assert watched == losses


def test_training_tracker_follows_a_proxy_loss_without_a_pair_share():
    tracker = TrainingTracker(every=1)
    run(TrainConfig(**{**FAST, "loss": "proxy_anchor", "epochs": 1}), callbacks=[tracker])
    first = tracker.records[0]
    assert math.isnan(first["nontrivial_gradient_share"])  # (B, C) proxy gradients have no pairs to share
    assert 0.0 <= first["trivial_pairs"] <= 1.0 and first["recall_at_1"] > 0.0

"""A run's files and refusals (issue 17): the output folder is checked and locked before training, every file is
written atomically, a damaged or foreign checkpoint is refused with a clear message, and a diverging run stops
naming the step. The command line prints one line and exits non-zero, without a traceback."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import torch
from torch import nn

from dmlbook.losses import ContrastiveLoss
from dmlbook.train import (
    CheckpointError,
    ConfigError,
    OutputBusyError,
    OutputLock,
    TrainConfig,
    TrainingDiverged,
    atomic_write,
    load_checkpoint,
    main,
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
    "device": "cpu",
    "data_args": DATA,
}
ARGS = [
    "--dataset",
    "synthetic",
    "--loss",
    "contrastive",
    "--epochs",
    "2",
    "--batches-per-epoch",
    "3",
    "--no-progress",
    "--device",
    "cpu",
    "--data-arg",
    "n_classes=8",
    "--data-arg",
    "n_per_class=20",
]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


class Steps:
    """An on_step function that counts the optimiser steps."""

    def __init__(self):
        self.n = 0

    def __call__(self, info):
        self.n += 1


def _cli(capsys, *extra):
    code = main([*ARGS, *extra])
    captured = capsys.readouterr()
    return code, captured.err


def _clean_error(err):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("dmlbook train: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------------------- the output folder
def test_out_is_an_existing_file(tmp_path, capsys):
    target = tmp_path / "metrics_here"
    target.write_text("not a folder")
    steps = Steps()
    with pytest.raises(ConfigError, match="existing file") as caught:
        train(TrainConfig(**FAST, out=str(target)), on_step=steps)
    assert str(target) in str(caught.value) and caught.value.field == "out" and steps.n == 0
    code, err = _cli(capsys, "--out", str(target))
    assert code == 2 and str(target) in _clean_error(err) and "--out" in err
    assert target.read_text() == "not a folder"


def test_out_inside_a_file(tmp_path, capsys):
    parent = tmp_path / "a_file"
    parent.write_text("x")
    steps = Steps()
    with pytest.raises(ConfigError, match="cannot create the output folder"):
        train(TrainConfig(**FAST, out=str(parent / "run")), on_step=steps)
    assert steps.n == 0
    code, err = _cli(capsys, "--out", str(parent / "run"))
    assert code == 2 and str(parent / "run") in _clean_error(err)


def test_read_only_out_is_refused_before_training(tmp_path, monkeypatch, capsys):
    """Root ignores permissions, so the file system's answer is simulated: creating a file in OUT fails with
    EROFS, as on a read-only mount."""
    out = tmp_path / "ro"
    out.mkdir()
    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and os.path.samefile(dir, out):
            raise OSError(errno.EROFS, "Read-only file system", str(out))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    steps = Steps()
    with pytest.raises(ConfigError, match="not writable: Read-only file system") as caught:
        train(TrainConfig(**FAST, out=str(out)), on_step=steps)
    assert str(out) in str(caught.value) and steps.n == 0
    code, err = _cli(capsys, "--out", str(out))
    assert code == 2 and "not writable" in _clean_error(err)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------------------------- the lock
def _holder(out, seconds):
    code = (
        f"import time; from dmlbook.train import OutputLock\n"
        f"with OutputLock({str(out)!r}):\n    print('held', flush=True); time.sleep({seconds})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    other = _holder(out, 60)
    try:
        steps = Steps()
        with pytest.raises(OutputBusyError, match=f"in use by another run \\(process {other.pid} on "):
            train(TrainConfig(**FAST, out=str(out)), on_step=steps)
        assert steps.n == 0 and not (out / "checkpoint.pt").exists()
        code, err = _cli(capsys, "--out", str(out))
        assert code == 1 and f"process {other.pid}" in _clean_error(err)
    finally:
        other.kill()
        other.wait()
    # the holder died without releasing: its lock is stale and the next run takes it over
    assert json.loads((out / ".lock").read_text())["pid"] == other.pid
    result = train(TrainConfig(**FAST, out=str(out)))
    assert result.metrics["epochs"] == 2 and not (out / ".lock").exists()


def test_a_lock_of_a_live_process_on_another_host_is_respected(tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    (out / ".lock").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname() + "-elsewhere",
                "started": "2024-01-01T00:00:00",
            }
        )
    )
    with pytest.raises(OutputBusyError, match="elsewhere"):
        OutputLock(out).acquire()
    with OutputLock(tmp_path) as lock:  # an unused folder: held, then released
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


# ------------------------------------------------------------------------------------------- atomic writes
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": true}\n')

    def half(f):
        f.write(b'{"new": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=f"cannot write {path}: No space left"):
        atomic_write(path, half)
    assert path.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left


def test_concurrent_writers_never_collide(tmp_path):
    path = tmp_path / "checkpoint.pt"
    errors = []

    def writer(k):
        try:
            for i in range(20):
                atomic_write(
                    path, lambda f, k=k, i=i: torch.save({"writer": k, "i": i, "x": torch.ones(1000)}, f)
                )
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert torch.load(path)["i"] == 19  # whole: the last write of one of the writers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_run_files_are_complete_and_no_temporary_file_is_left(tmp_path):
    train(TrainConfig(**FAST, out=str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "history.json", "metrics.json"]
    assert oct((tmp_path / "metrics.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (
        saved["config"]["seed"] == 0 and "epochs" not in saved["config"]
    )  # the run's result-changing settings


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------------- resuming
@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_a_damaged_checkpoint_is_named_and_nothing_trains(tmp_path, capsys, damage):
    out = tmp_path / "out"
    train(TrainConfig(**FAST, out=str(out)))
    checkpoint = out / "checkpoint.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(4096)}[damage]
    )
    steps = Steps()
    with pytest.raises(CheckpointError, match="is damaged") as caught:
        train(TrainConfig(**FAST, out=str(out), resume=True), on_step=steps)
    message = str(caught.value)
    assert str(checkpoint) in message and "delete it" in message and "--resume" in message and steps.n == 0
    code, err = _cli(capsys, "--out", str(out), "--resume")
    assert code == 2 and str(checkpoint) in _clean_error(err)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seed": 4}, "seed"),
        ({"loss": "triplet"}, "loss"),
        ({"embedding_dim": 3}, "embedding_dim"),
        ({"model": "linear"}, "model"),
        ({"lr": 0.5}, "lr"),
        ({"batch_k": 4}, "batch_k"),
    ],
)
def test_resuming_with_other_settings_is_refused(tmp_path, change, field):
    out = tmp_path / "out"
    train(TrainConfig(**FAST, out=str(out)))
    before = (out / "checkpoint.pt").read_bytes()
    steps = Steps()
    with pytest.raises(CheckpointError, match=f"other settings \\({field}: ") as caught:
        train(TrainConfig(**{**FAST, **change}, out=str(out), resume=True), on_step=steps)
    assert str(out / "checkpoint.pt") in str(caught.value) and steps.n == 0
    assert (out / "checkpoint.pt").read_bytes() == before  # the refused run left the checkpoint alone


def test_resuming_with_more_epochs_or_another_device_setting_is_allowed(tmp_path):
    out = tmp_path / "out"
    train(TrainConfig(**FAST, out=str(out)))
    steps = Steps()
    longer = train(
        TrainConfig(**{**FAST, "epochs": 3}, out=str(out), resume=True, num_workers=0, eval_batch_size=64),
        on_step=steps,
    )
    assert steps.n == 3 and longer.metrics["epochs"] == 3  # only the third epoch ran


def test_resume_cli_without_a_checkpoint(tmp_path, capsys):
    code, err = _cli(capsys, "--out", str(tmp_path / "nothing"), "--resume")
    assert code == 2 and "no checkpoint" in _clean_error(err)


# ------------------------------------------------------------------------------------------------ diverging
def test_a_huge_learning_rate_stops_the_run_naming_the_step(tmp_path, capsys):
    steps = Steps()
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 1, step \d+: the embeddings") as caught:
        train(TrainConfig(**FAST, lr=1e12, out=str(tmp_path / "a")), on_step=steps)
    assert "lr=1e+12" in str(caught.value) and steps.n >= 1
    assert not (tmp_path / "a" / "metrics.json").exists()
    code, err = _cli(capsys, "--lr", "1e12", "--out", str(tmp_path / "b"))
    assert code == 1 and "diverged at epoch 1, step" in _clean_error(err)
    assert not (tmp_path / "b" / "metrics.json").exists()


class _NaNGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class PoisonedLoss(nn.Module):
    """A contrastive loss whose gradient turns NaN from a given step on (the loss value stays finite)."""

    def __init__(self, from_step):
        super().__init__()
        self.inner, self.from_step, self.calls = ContrastiveLoss(), from_step, 0

    def forward(self, embeddings, labels):
        self.calls += 1
        if self.calls > self.from_step:
            embeddings = _NaNGradient.apply(embeddings)
        return self.inner(embeddings, labels)


def test_non_finite_parameters_stop_the_run():
    with pytest.raises(
        TrainingDiverged, match=r"epoch 2, step 4: the optimiser step made the parameters nan"
    ):
        run(TrainConfig(**FAST), loss_fn=PoisonedLoss(from_step=4))


def test_a_diverging_run_keeps_its_last_good_checkpoint(tmp_path):
    out = tmp_path / "out"

    def poison(info):  # the model breaks during epoch 2: the next batch's embeddings are NaN
        if info.step == 3:
            with torch.no_grad():
                next(info.model.parameters()).fill_(float("nan"))

    epochs = []
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 4: the embeddings are no longer finite"):
        train(TrainConfig(**{**FAST, "epochs": 3}, out=str(out)), on_step=poison, on_epoch=epochs.append)
    assert [e["epoch"] for e in epochs] == [1]
    saved = load_checkpoint(out / "checkpoint.pt")  # the epoch-1 checkpoint, intact and finite
    assert saved["state"]["epoch"] == 1
    assert all(bool(torch.isfinite(v).all()) for v in saved["model"].values())
    assert not (out / "metrics.json").exists() and not (out / ".lock").exists()
    resumed = train(TrainConfig(**{**FAST, "epochs": 3}, out=str(out), resume=True))
    assert resumed.metrics["epochs"] == 3  # and the run goes on from it


def test_run_raises_for_a_non_finite_loss():
    class Infinite(nn.Module):
        def forward(self, embeddings, labels):
            return embeddings.sum() * 0 + float("inf")

    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 0: the loss became inf"):
        run(TrainConfig(**FAST), loss_fn=Infinite())


# ----------------------------------------------------------------------------------------- flags and numbers
def test_batch_k_error_names_the_flag(tmp_path, capsys):
    code, err = _cli(capsys, "--batch-k", "1", "--out", str(tmp_path))
    assert code == 2 and "argument --batch-k: batch_k must be >= 2" in _clean_error(err)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_batch_p_reduction_is_reported(tmp_path, capsys):
    code = main([*ARGS, "--batch-p", "1000", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0 and "batch_p 1000 reduced to 4" in err
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["batch_p"] == 4


def test_data_errors_are_one_clean_line(tmp_path, capsys):
    code, err = _cli(capsys, "--data-arg", "n_classes=1", "--out", str(tmp_path))
    assert code == 2
    _clean_error(err)


def test_refused_runs_do_not_wait_for_a_slow_start(tmp_path):
    """The lock is taken before the data are loaded: the refusal is immediate."""
    out = tmp_path / "busy"
    out.mkdir()
    other = _holder(out, 60)
    try:
        started = time.perf_counter()
        with pytest.raises(OutputBusyError):
            train(TrainConfig(**FAST, out=str(out)))
        assert time.perf_counter() - started < 5
    finally:
        other.kill()
        other.wait()

"""torchrun / DistributedDataParallel on CPU with gloo: two processes see the global batch and get the same loss
and gradients as one process on that batch."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dmlbook.distributed import gather_embeddings
from dmlbook.losses import OSMCAALoss, TripletMarginLoss

WORLD, PER_RANK, IN_DIM, EMB_DIM, CLASSES = 2, 8, 6, 4, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD * PER_RANK, IN_DIM, generator=gen, dtype=torch.float64)  # (16, 6)
    y = torch.arange(WORLD * PER_RANK) % CLASSES  # (16,)
    torch.manual_seed(1)
    model = nn.Linear(IN_DIM, EMB_DIM).double()
    losses = [
        OSMCAALoss(num_classes=CLASSES, embedding_dim=EMB_DIM).double(),
        TripletMarginLoss(margin=0.2, mining="all"),
    ]
    return x, y, model, losses


def _single_process():
    out = []
    for i in range(2):
        x, y, model, losses = _problem()
        loss = losses[i](model(x), y)
        loss.backward()
        out.append(
            (
                loss.item(),
                [p.grad.clone() for p in model.parameters()],
                [p.grad.clone() for p in losses[i].parameters()],
            )
        )
    return out


def _worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        out = []
        for i in range(2):
            x, y, model, losses = _problem()
            ddp = nn.parallel.DistributedDataParallel(model)
            part = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
            emb, labels = gather_embeddings(ddp(x[part]), y[part])  # (16, D), (16,)
            loss = losses[i](emb, labels)
            loss.backward()
            out.append(
                (
                    loss.item(),
                    [p.grad.numpy().copy() for p in model.parameters()],
                    [p.grad.numpy().copy() for p in losses[i].parameters()],
                )
            )
        queue.put((rank, out))  # numpy, not tensors: torch would share memory with a process about to exit
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_the_global_batch():
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(WORLD)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    reference = _single_process()
    for rank in range(WORLD):
        for (loss, model_grads, loss_grads), (ref_loss, ref_model, ref_loss_grads) in zip(
            results[rank], reference
        ):
            assert loss == pytest.approx(ref_loss, rel=1e-12)
            for g, r in zip(model_grads, ref_model):
                torch.testing.assert_close(
                    torch.from_numpy(g), r, rtol=1e-10, atol=1e-12
                )  # DDP mean of W·∂L/∂e_r = the sum
            for g, r in zip(loss_grads, ref_loss_grads):  # the CAA classifier sees the global batch itself
                torch.testing.assert_close(torch.from_numpy(g), r, rtol=1e-10, atol=1e-12)


def test_gather_is_the_identity_without_a_process_group():
    emb, labels = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    out_emb, out_labels = gather_embeddings(emb, labels)
    assert out_emb is emb and out_labels is labels


@pytest.mark.slow
def test_torchrun_command_line_trains_on_the_global_batch(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH")
    args = [
        "-m",
        "dmlbook",
        "train",
        "--dataset",
        "synthetic",
        "--loss",
        "contrastive",
        "--epochs",
        "2",
        "--batches-per-epoch",
        "1",
        "--batch-p",
        "4",
        "--batch-k",
        "4",
        "--no-progress",
        "--data-arg",
        "n_classes=12",
        "--data-arg",
        "dim=6",
        "--val-fraction",
        "0",
        # one step per epoch, SGD: the second record is the loss after one update. Further float32 steps
        # drift apart chaotically (the all-reduce sums in another order, and a pair that crosses a hinge
        # changes the average's count), so exactness is proven in float64 above, not here.
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            torchrun,
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            *args,
            "--out",
            str(tmp_path / "ddp"),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [sys.executable, *args, "--out", str(tmp_path / "one")],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    ddp_hist = json.loads((tmp_path / "ddp" / "history.json").read_text())
    one_hist = json.loads((tmp_path / "one" / "history.json").read_text())
    assert [h["loss"] for h in ddp_hist] == pytest.approx([h["loss"] for h in one_hist], rel=1e-4)

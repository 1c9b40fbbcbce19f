"""Training beyond one process: ``torchrun`` set-up and the global batch for the losses.

Metric-learning losses compare every sample with every other one, so under DistributedDataParallel each
process must see the *global* batch, not only its own shard. :func:`gather_embeddings` concatenates the
shards of all processes; the gradient flows back to the calling process's own shard only.

Why the backward multiplies by the world size W: every process computes the same global loss
``L(e_1, ..., e_W)`` and back-propagates ``∂L/∂e_r`` into its own parameters' gradient. The exact gradient is
``Σ_r ∂L/∂e_r · ∂e_r/∂θ``, but DDP *averages* gradients over processes, which would give 1/W of it. Scaling the
shard's gradient by W makes DDP's mean equal to the sum. Parameters of the loss itself (e.g. the CAA classifier
of :class:`~dmlbook.losses.OSMCAALoss`) see the whole global batch on every process already, so they must not
be averaged again: keep them outside the DDP module (``train`` does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes (1 and 0 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment of ``torchrun`` (``WORLD_SIZE`` > 1 and ``RANK``) is present."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def setup(device: torch.device) -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown() -> None:
    """Destroy the process group if one was created."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward returns ``W ·`` the gradient of this process's own shard (see module doc)."""

    @staticmethod
    def forward(ctx, shard: Tensor) -> Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        ctx.rank, ctx.world, ctx.rows = dist.get_rank(), world, shard.shape[0]
        parts = [torch.empty_like(shard) for _ in range(world)]
        dist.all_gather(parts, shard.contiguous())
        return torch.cat(parts)  # (W*B, D)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows] * ctx.world  # (B, D)


def gather_embeddings(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The global batch: every process's ``(B, D)`` embeddings and ``(B,)`` labels, concatenated in rank order.

    Every process must pass the same B. Without an initialised process group this returns its inputs.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, labels
    parts = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, labels.contiguous())
    return _GatherWithGrad.apply(embeddings), torch.cat(parts)  # (W*B, D), (W*B,)


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every process (identity without torchrun)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()

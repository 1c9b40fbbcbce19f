"""No loss allocates a B×B×B tensor: at B = 1024 the largest tensor that any operation of the forward and the
backward pass creates stays far below B³ floats (4 GiB), measured op by op with a ``TorchDispatchMode``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from dmlbook.losses import MultiSimilarityLoss, OSMCAALoss, TripletMarginLoss, build_loss

B = 1024
FLOAT = 4  # bytes
BOUND = 16 * B * B * FLOAT  # 64 MiB: sixteen B×B float matrices, 1/64 of one B×B×B float tensor
CASES = {
    "contrastive": lambda: build_loss("contrastive"),
    "triplet_all": lambda: TripletMarginLoss(mining="all"),
    "triplet_semi_hard": lambda: TripletMarginLoss(mining="semi_hard"),
    "triplet_batch_hard": lambda: TripletMarginLoss(mining="batch_hard"),
    "multi_similarity_miner": lambda: MultiSimilarityLoss(mining_epsilon=0.1),
    "lifted": lambda: build_loss("lifted"),
    "ranked_list": lambda: build_loss("ranked_list"),
    "osm_caa": lambda: OSMCAALoss(num_classes=256, embedding_dim=64),
}


class LargestAllocation(TorchDispatchMode):
    """Records, for every aten operation run inside it (autograd's backward included), the bytes of the storage
    of each tensor it returns, and keeps the largest with the operation's name.

    The storage, not ``numel``: a view (``expand``, ``view``) shares its input's storage and allocates nothing,
    while a new tensor's storage is exactly what the operation allocated.
    """

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.op = ""
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                nbytes = t.untyped_storage().nbytes()
                if nbytes > self.largest:
                    self.largest, self.op = nbytes, str(func)
        return out


def measure(loss_fn: Any, x: torch.Tensor, y: torch.Tensor) -> tuple[LargestAllocation, int]:
    """Forward and backward of ``loss_fn`` under :class:`LargestAllocation`; also the number of backward ops."""
    with LargestAllocation() as rec:
        loss = loss_fn(x, y)
        forward_ops = rec.ops
        loss.backward()
    return rec, rec.ops - forward_ops


def test_the_recorder_sees_a_cubic_allocation_and_the_backward_pass():
    """The measurement can fail: a loss that forms all (a, p, n) triples is caught, also in its backward."""
    b = 96

    def cubic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x)  # (b, b)
        return (d[:, :, None] - d[:, None, :]).relu().mean()  # (b, b, b) before the mean

    x = torch.randn(b, 8, requires_grad=True)
    rec, backward_ops = measure(cubic, x, torch.arange(b) // 4)
    assert rec.largest >= b**3 * FLOAT, rec.op
    assert backward_ops > 0 and x.grad is not None


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_cubic_allocation(name):
    torch.manual_seed(0)
    x = torch.randn(B, 64, requires_grad=True)
    y = torch.arange(B) // 4
    rec, backward_ops = measure(CASES[name](), x, y)
    assert backward_ops > 0 and x.grad is not None  # the backward pass ran under the recorder
    # every one of these losses forms the B×B distance matrix, so the recorder must have seen at least that much
    assert rec.largest >= B * B * FLOAT, f"{name}: largest {rec.largest} bytes ({rec.op}); nothing recorded?"
    assert rec.largest <= BOUND, (
        f"{name}: {rec.op} allocated {rec.largest / 2**20:.0f} MiB (bound {BOUND / 2**20:.0f} MiB; "
        f"a B×B×B float tensor would be {B**3 * FLOAT / 2**30:.0f} GiB)"
    )

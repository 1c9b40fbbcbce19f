"""No loss allocates a B×B×B tensor: at B = 1024 the largest single allocation stays far below B³ bytes."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dmlbook.losses import MultiSimilarityLoss, OSMCAALoss, TripletMarginLoss, build_loss

B = 1024
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


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_cubic_allocation(name):
    x = torch.randn(B, 64, requires_grad=True)
    y = torch.arange(B) // 4
    loss_fn = CASES[name]()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss_fn(x, y).backward()
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert 0 < largest < 64 * 2**20, f"{name}: an operation allocated {largest / 2**20:.0f} MiB"
    assert B**3 > 1000 * 2**20  # a B×B×B bool tensor would be 1 GiB

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dmlbook.data import DMLDataset, PKSampler


def _labels():
    # 6 classes of sizes 10, 8, 6, 3 (< K), 2 (< K), 1 (singleton, excluded)
    return np.repeat(np.arange(6), [10, 8, 6, 3, 2, 1])


def test_batches_have_p_classes_times_k():
    labels = _labels()
    s = PKSampler(labels, p=3, k=4, seed=0)
    assert s.num_excluded == 1 and len(s) == 29 // 12
    batches = list(s)
    assert len(batches) == len(s)
    for b in batches:
        assert len(b) == 12
        lab = labels[b]
        assert len(set(lab)) == 3 and all((lab == c).sum() == 4 for c in set(lab))
        assert 5 not in set(lab)  # the singleton class never appears


def test_small_classes_use_replacement_only_inside_the_class():
    labels = np.repeat(np.arange(3), [3, 2, 20])
    s = PKSampler(labels, p=3, k=5, batches_per_epoch=20, seed=1)
    for b in s:
        b = np.asarray(b).reshape(3, 5)
        for group in b:
            c = labels[group[0]]
            assert (labels[group] == c).all()
            n_c = (labels == c).sum()
            # all samples of a small class are in the group; a large class never repeats one
            assert len(set(group)) == min(n_c, 5)


def test_each_sample_used_once_before_reuse():
    labels = np.repeat(np.arange(4), 8)
    s = PKSampler(labels, p=4, k=2, seed=0)  # one epoch = 32 // 8 = 4 batches = every sample exactly once
    seen = np.concatenate([np.asarray(b) for b in s])
    assert sorted(seen.tolist()) == list(range(32))


def test_seed_and_epoch_reproducibility():
    labels = _labels()
    a, b = PKSampler(labels, p=2, k=3, seed=7), PKSampler(labels, p=2, k=3, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    a.set_epoch(3)
    assert list(a) != list(b)
    c = PKSampler(labels, p=2, k=3, seed=7)
    first, second = list(c), list(c)  # without set_epoch each pass advances the epoch
    assert first != second
    c.set_epoch(0)
    assert list(c) == first
    assert list(PKSampler(labels, p=2, k=3, seed=8)) != first


def test_ddp_ranks_split_each_global_batch():
    labels = np.repeat(np.arange(8), 6)
    full = list(PKSampler(labels, p=4, k=3, seed=5, num_replicas=1, rank=0))
    parts = [list(PKSampler(labels, p=4, k=3, seed=5, num_replicas=2, rank=r)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(full)
    for g, r0, r1 in zip(full, *parts):
        assert len(r0) == len(r1) == 6 and r0 + r1 == g
        assert not set(labels[r0]) & set(labels[r1])  # whole classes per rank


def test_dataloader_integration():
    labels = np.repeat(np.arange(5), 4)
    ds = DMLDataset(torch.randn(20, 3), labels)
    loader = DataLoader(ds, batch_sampler=PKSampler(ds, p=2, k=2, seed=0))
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 3) and len(torch.unique(yb)) == 2
    assert len(loader) == 20 // 4


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"p": 6, "k": 2}, ValueError, "at least p=6 classes"),
        ({"p": 2, "k": 1}, ValueError, "k must be"),
        ({"p": 0, "k": 2}, ValueError, "p must be"),
        ({"p": 3, "k": 2, "num_replicas": 2, "rank": 0}, ValueError, "divisible"),
        ({"p": 2, "k": 2, "num_replicas": 2, "rank": 2}, ValueError, "rank"),
        ({"p": 2.0, "k": 2}, TypeError, "p must be an int"),
        ({"p": 2, "k": 2, "seed": -1}, ValueError, "seed must be >= 0"),
        ({"p": 2, "k": 2, "seed": 1.5}, TypeError, "seed must be an int"),
    ],
)
def test_sampler_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        PKSampler(_labels(), **kwargs)


def test_sampler_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must be 1-D"):
        PKSampler(np.zeros((4, 2), int), p=1, k=2)
    with pytest.raises(TypeError, match="labels"):
        PKSampler([0.5, 1.5], p=1, k=2)

"""P x K batch sampler: each batch holds P classes with K samples each.

Metric-learning losses need positives in every batch; drawing P classes and K samples per class guarantees
``P * (K choose 2)`` positive pairs (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
Re-Identification", 2017).

Conventions (all tested):

* **Epoch.** One epoch is ``len(sampler) = max(1, N // (P * K))`` batches, where N counts the samples of
  eligible classes: enough to see each sample about once. Classes are drawn with probability proportional to
  their size, and inside a class samples are taken from a shuffled queue, so every sample of a class is used
  once before any is reused.
* **Small classes.** A class needs at least 2 samples to give a positive pair; classes with a single sample
  are left out (``num_excluded``). A class with ``2 <= n < K`` samples gives all n samples plus ``K - n``
  drawn with replacement from that class only; larger classes never repeat a sample inside a batch.
  Fewer than P eligible classes is a ValueError.
* **Seeds.** The batches depend only on ``(seed, epoch)``. ``set_epoch(e)`` selects the epoch, as with
  ``DistributedSampler``; without it each full pass advances the epoch by one.
* **DDP.** With ``num_replicas=R, rank=r`` every rank builds the same global P x K batch and keeps its share:
  ``P / R`` whole classes x K samples (so P must be divisible by R); every rank yields ``len(sampler)`` batches.

Use it as ``DataLoader(dataset, batch_sampler=PKSampler(dataset.labels, p=8, k=4))``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .._checks import check_int


def _labels_array(labels: Any) -> np.ndarray:
    labels = getattr(labels, "labels", labels)  # a DMLDataset
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"labels must be a 1-D integer array (or a dataset with .labels); got dtype {labels.dtype}"
        )
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D with one label per sample; got shape {labels.shape}")
    return labels


class PKSampler(Sampler[list[int]]):
    """Yields batches of dataset indices, P classes x K samples per class (see the module docstring).

    Args:
        labels: one integer label per sample (array, tensor, list, or a dataset with ``.labels``).
        p: classes per (global) batch. k: samples per class.
        batches_per_epoch: override the epoch length (default ``max(1, N // (p * k))``).
        seed: base seed; batches depend on ``(seed, epoch)`` only.
        num_replicas, rank: for DistributedDataParallel; default: read from ``torch.distributed`` when it is
            initialised, else 1 and 0.
    """

    def __init__(
        self,
        labels: Any,
        *,
        p: int,
        k: int,
        batches_per_epoch: int | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        labels = _labels_array(labels)
        self.p, self.k = check_int(p, "p", 1), check_int(k, "k", 2)
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = (dist.get_world_size() if ready else 1) if num_replicas is None else num_replicas
            rank = (dist.get_rank() if ready else 0) if rank is None else rank
        self.num_replicas = check_int(num_replicas, "num_replicas", 1)
        self.rank = check_int(rank, "rank", 0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"rank must be < num_replicas ({self.num_replicas}); got {self.rank}")
        if self.p % self.num_replicas:
            raise ValueError(
                f"p ({self.p}) must be divisible by num_replicas ({self.num_replicas}) so that each rank "
                "gets whole classes"
            )
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        eligible = counts >= 2
        self.num_excluded = int((~eligible).sum())
        if eligible.sum() < self.p:
            raise ValueError(
                f"PKSampler needs at least p={self.p} classes with >= 2 samples; the labels have "
                f"{int(eligible.sum())} such classes (of {len(classes)})"
            )
        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(counts)[:-1])
        self.class_indices = [g for g, ok in zip(groups, eligible) if ok]
        self.class_sizes = counts[eligible]
        n = int(self.class_sizes.sum())
        if batches_per_epoch is None:
            batches_per_epoch = max(1, n // (self.p * self.k))
        self.batches_per_epoch = check_int(batches_per_epoch, "batches_per_epoch", 1)
        self.seed = check_int(seed, "seed", 0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next pass yields (call it with the same value on every rank)."""
        self.epoch = check_int(epoch, "epoch", 0)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _draw(self, rng: np.random.Generator, c: int, queues: dict[int, np.ndarray]) -> np.ndarray:
        idx, k = self.class_indices[c], self.k
        if len(idx) < k:
            return np.concatenate([rng.permutation(idx), rng.choice(idx, size=k - len(idx))])
        queue = queues.get(c, idx[:0])
        if len(queue) < k:  # finish this pass over the class, then start a new one whose first items differ
            fresh = rng.permutation(idx)
            seen = np.isin(fresh, queue)
            queue = np.concatenate([queue, fresh[~seen], fresh[seen]])
        queues[c] = queue[k:]
        return queue[:k]

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        weights = self.class_sizes / self.class_sizes.sum()
        queues: dict[int, np.ndarray] = {}
        share = self.p // self.num_replicas
        mine = slice(self.rank * share, (self.rank + 1) * share)
        for _ in range(self.batches_per_epoch):
            chosen = rng.choice(len(self.class_indices), size=self.p, replace=False, p=weights)
            batch = [self._draw(rng, int(c), queues) for c in chosen]
            yield np.concatenate(batch[mine]).tolist()

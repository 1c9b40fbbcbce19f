"""A one-minute smoke demo of the core library: ``python -m dmlbook demo``.

Trains a linear embedding of noisy Gaussian classes (20 % of the training labels flipped) with three losses and
prints, for each, the trivial-pair fraction the loss saw at the start and the end, and the Recall@1 on held-out
classes. It needs only torch and numpy; the book's chapters do the real experiments.
"""

from __future__ import annotations

import argparse

import torch

from ..data import DMLDataset
from ..losses import ContrastiveLoss, OSMCAALoss, TripletMarginLoss
from ..train import MiningTrace, TrainConfig
from ..train import run as train_run


def _classes(
    n_classes: int, per_class: int, dim: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    centres = 3.0 * torch.randn(n_classes, dim, generator=generator)  # (C, dim)
    labels = torch.arange(n_classes).repeat_interleave(per_class)  # (N,)
    return centres[labels] + torch.randn(len(labels), dim, generator=generator), labels


def run(*, steps: int = 150, seed: int = 0, noise: float = 0.2) -> dict[str, dict[str, float]]:
    """Train one linear head per loss through :func:`dmlbook.train.run`; return
    ``{loss: {trivial_start, trivial_end, recall@1}}`` (trivial fractions of the loss's own mining, read by the
    :class:`~dmlbook.train.MiningTrace` callback after the first and the last step)."""
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = _classes(16, 24, 32, g)  # (384, 32), (384,)
    x_test, y_test = _classes(16, 24, 32, g)
    flip = torch.rand(len(y_train), generator=g) < noise
    y_noisy = torch.where(flip, torch.randint(0, 16, y_train.shape, generator=g), y_train)  # (384,)
    splits = (
        DMLDataset(x_train, y_noisy, name="demo", split="train"),
        None,
        DMLDataset(x_test, y_test, name="demo", split="test"),
    )
    config = TrainConfig(
        dataset="features",  # vectors given as splits below
        loss="contrastive",
        epochs=1,
        batches_per_epoch=steps,
        batch_p=16,
        batch_k=8,
        lr=1e-2,
        schedule="none",
        val_fraction=0.0,
        seed=seed,
        device="cpu",
        progress=False,
    )
    results: dict[str, dict[str, float]] = {}
    for name, make in {
        "contrastive": lambda: ContrastiveLoss(neg_margin=1.0),
        "triplet (batch hard)": lambda: TripletMarginLoss(margin=0.2, mining="batch_hard"),
        "osm_caa": lambda: OSMCAALoss(num_classes=16, embedding_dim=16),
    }.items():
        torch.manual_seed(seed)
        trace = MiningTrace(every=1)
        result = train_run(
            config, model=torch.nn.Linear(32, 16), loss_fn=make(), splits=splits, callbacks=[trace], nmi=False
        )
        _, trivial = trace.series("trivial_fraction")
        results[name] = {
            "trivial_start": float(trivial[0]),
            "trivial_end": float(trivial[-1]),
            "recall@1": float(result.metrics["recall@1"]),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dmlbook demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps per loss")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = run(steps=args.steps, seed=args.seed)
    print(f"{'loss':22s} {'trivial@start':>13s} {'trivial@end':>11s} {'Recall@1':>9s}")
    for name, r in results.items():
        print(f"{name:22s} {r['trivial_start']:13.2f} {r['trivial_end']:11.2f} {r['recall@1']:9.3f}")
    return 0

"""A one-minute smoke demo of the core library: ``python -m dmlbook demo``.

Trains a linear embedding of noisy Gaussian classes (20 % of the training labels flipped) with three losses and
prints, for each, the trivial-pair fraction the loss saw at the start and the end, and the Recall@1 on held-out
classes. It needs only torch and numpy; the book's chapters do the real experiments.
"""

from __future__ import annotations

import argparse

import torch

from .. import seed_everything
from ..evaluation import evaluate
from ..losses import ContrastiveLoss, OSMCAALoss, TripletMarginLoss


def _classes(
    n_classes: int, per_class: int, dim: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    centres = 3.0 * torch.randn(n_classes, dim, generator=generator)  # (C, dim)
    labels = torch.arange(n_classes).repeat_interleave(per_class)  # (N,)
    return centres[labels] + torch.randn(len(labels), dim, generator=generator), labels


def run(*, steps: int = 150, seed: int = 0, noise: float = 0.2) -> dict[str, dict[str, float]]:
    """Train one linear head per loss; return ``{loss: {trivial_start, trivial_end, recall@1}}``."""
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = _classes(16, 24, 32, g)
    x_test, y_test = _classes(16, 24, 32, g)
    flip = torch.rand(len(y_train), generator=g) < noise
    y_noisy = torch.where(flip, torch.randint(0, 16, y_train.shape, generator=g), y_train)
    results: dict[str, dict[str, float]] = {}
    for name, make in {
        "contrastive": lambda: ContrastiveLoss(neg_margin=1.0),
        "triplet (batch hard)": lambda: TripletMarginLoss(margin=0.2, mining="batch_hard"),
        "osm_caa": lambda: OSMCAALoss(num_classes=16, embedding_dim=16),
    }.items():
        torch.manual_seed(seed)
        head, loss_fn = torch.nn.Linear(32, 16), make()
        opt = torch.optim.Adam([*head.parameters(), *loss_fn.parameters()], lr=1e-2)
        trivial = []
        for step in range(steps):
            idx = torch.randperm(len(y_noisy), generator=g)[:128]
            emb = head(x_train[idx])
            if step in (0, steps - 1):
                trivial.append(loss_fn.details(emb, y_noisy[idx]).weights.trivial_fraction)
            opt.zero_grad()
            loss_fn(emb, y_noisy[idx]).backward()
            opt.step()
        with torch.no_grad():
            recall = evaluate(head(x_test), y_test, ks=(1,), nmi=False)["recall@1"]
        results[name] = {"trivial_start": trivial[0], "trivial_end": trivial[1], "recall@1": recall}
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

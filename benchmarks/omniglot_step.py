"""Where the time of one Omniglot training step goes (issue 15, section 3), on the CPU.

One step of the recipe (``DATASET_DEFAULTS["omniglot_embedded"]``: SmallCNN, P x K batches, Adam) is split into
data (PK indices -> a float batch, with the RandomAffine stroke jitter), forward, loss, backward and optimiser,
each the median over ``--steps`` timed steps after ``--warmup`` untimed ones. The reference is forward + backward of
the model alone on a ready tensor (a sum of the embeddings as the loss). Then the 13,180 evaluation images are
embedded and measured (exact k-NN Recall@K, MAP@R, R-precision; NMI off, as in the speed goal).

    OMP_NUM_THREADS=2 python benchmarks/omniglot_step.py --loss triplet --loss-arg mining=batch_hard

Goals on 2 cores: a whole step <= 1.3x model forward + backward; evaluation <= 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dmlbook.data import PKSampler, load_dataset
from dmlbook.data.transforms import RandomAffine
from dmlbook.evaluation import evaluate
from dmlbook.train import TrainConfig, build_loss_for, build_model_for, embed, make_optimizer


def _value(text: str) -> object:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loss", default="triplet")
    ap.add_argument("--loss-arg", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-jitter", action="store_true", help="time the data stage without the affine jitter")
    args = ap.parse_args()
    loss_args = {k: _value(v) for k, v in (a.split("=", 1) for a in args.loss_arg)}
    cfg = TrainConfig(
        dataset="omniglot_embedded", loss=args.loss, loss_args=loss_args, device="cpu"
    ).resolved()
    torch.manual_seed(0)
    train = load_dataset(cfg.dataset, split="train", val_fraction=cfg.val_fraction, seed=0)
    test = load_dataset(cfg.dataset, split="test")
    data, labels = train.data, torch.as_tensor(train.labels)
    model = build_model_for(cfg, train[0][0])
    loss_fn = build_loss_for(cfg, train.num_classes, model)
    optimizer = make_optimizer(model, loss_fn, cfg)
    jitter = None if args.no_jitter else RandomAffine(degrees=5, translate=0.05, scale=(0.95, 1.05), shear=5)
    sampler = iter(PKSampler(train.labels, p=cfg.batch_p, k=cfg.batch_k, batches_per_epoch=10**6, seed=0))
    stages = ("data", "forward", "loss", "backward", "optimiser")
    times: dict[str, list[float]] = {s: [] for s in stages + ("step", "model fwd+bwd")}
    model.train()
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        index = torch.as_tensor(next(sampler), dtype=torch.long)  # (B,)
        x, y = data[index].float().div_(255), labels[index]  # (B, 1, 28, 28), (B,)
        if jitter is not None:
            x = jitter(x)  # (B, 1, 28, 28)
        t1 = time.perf_counter()
        emb = model(x)  # (B, D)
        t2 = time.perf_counter()
        loss = loss_fn(emb, y)
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        optimizer.step()
        t5 = time.perf_counter()
        # the reference: forward + backward of the model alone on the ready batch
        model.zero_grad(set_to_none=True)
        r0 = time.perf_counter()
        model(x).sum().backward()
        r1 = time.perf_counter()
        if i >= args.warmup:
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                times[name].append(seconds)
            times["step"].append(t5 - t0)
            times["model fwd+bwd"].append(r1 - r0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    ref = med["model fwd+bwd"]
    print(
        f"Omniglot step, loss {args.loss} {loss_args or ''}, P x K = {cfg.batch_p} x {cfg.batch_k}, "
        f"{torch.get_num_threads()} threads, median of {args.steps} steps"
    )
    print(f"| {'stage':<16} | {'ms':>8} | {'x model fwd+bwd':>15} |")
    print(f"|{'-' * 18}|{'-' * 10}|{'-' * 17}|")
    for name in stages + ("step", "model fwd+bwd"):
        print(f"| {name:<16} | {med[name]:8.2f} | {med[name] / ref:15.2f} |")
    model.eval()
    t0 = time.perf_counter()
    emb, lab = embed(model, test, batch_size=cfg.eval_batch_size)
    t1 = time.perf_counter()
    metrics = evaluate(emb, lab, nmi=False)
    t2 = time.perf_counter()
    print(
        f"evaluation of {len(test)} images: embed {t1 - t0:.2f} s + k-NN and metrics {t2 - t1:.2f} s = "
        f"{t2 - t0:.2f} s (Recall@1 {metrics['recall@1']:.3f} at initialisation)"
    )


if __name__ == "__main__":
    main()

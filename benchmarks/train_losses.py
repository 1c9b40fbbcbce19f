"""Real benchmark: every loss, several seeds, one fixed budget per loss, class-disjoint test classes.

    DMLBOOK_DATA=../shared/data python benchmarks/train_losses.py --dataset cars196_features
    DMLBOOK_DATA=../shared/data python benchmarks/train_losses.py --dataset fashion_mnist

Each run is ``dmlbook.train.train`` with the dataset's defaults (``DATASET_DEFAULTS``; the budget is the same
for every loss: the epoch cap, early-stopping patience and batch). The table gives mean ± std over seeds of
Recall@1/2/4/8 and MAP@R (in %), and the training minutes per run; the first row is the raw input (cosine k-NN
on the frozen features or on the pixels). Output: a Markdown table on stdout and ``--out`` (JSON with every run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from dmlbook.experiments import report
from dmlbook.losses import LOSSES
from dmlbook.train import TrainConfig, train

COLUMNS = report.COLUMNS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cars196_features")
    p.add_argument("--data-root", default=None)
    p.add_argument("--losses", nargs="+", default=list(dict.fromkeys(LOSSES)), choices=list(LOSSES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (the goal is stated for 2 cores)"
    )
    p.add_argument("--out", default=None, help="JSON file (default build/benchmarks/train_<dataset>.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"build/benchmarks/train_{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    runs: dict[str, list[dict]] = {}
    for loss in args.losses:
        for seed in args.seeds:
            started = time.perf_counter()
            result = train(
                TrainConfig(
                    dataset=args.dataset, data_root=args.data_root, loss=loss, seed=seed, progress=False
                )
            )
            m = dict(result.metrics, wall_seconds=time.perf_counter() - started)
            runs.setdefault(loss, []).append(m)
            print(
                f"{loss:>16} seed {seed}: recall@1 {100 * m['recall@1']:.1f}  epochs {m['epochs']}  "
                f"train {m['seconds']:.1f}s  wall {m['wall_seconds']:.1f}s",
                file=sys.stderr,
                flush=True,
            )

    raw = report.raw_baseline(args.dataset, args.data_root)
    title = (
        f"dataset {args.dataset}, test classes, {len(args.seeds)} seeds, {args.threads} threads "
        f"(torch {torch.__version__}, {os.cpu_count()} CPUs)"
    )
    table = report.results_table(runs, raw=raw, title=title)
    print(table)
    out.write_text(json.dumps({"raw": raw, "runs": runs, "table": table}, indent=2) + "\n")
    out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

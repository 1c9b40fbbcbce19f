"""Time and peak memory of leave-one-out evaluation (no NMI) on random embeddings.

    python benchmarks/knn_memory.py --n 50000 --dim 512 --backend torch

Peak RSS is the process maximum (``ru_maxrss``); the full N x N float32 matrix would need 4 N^2 bytes.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from dmlbook.evaluation import BACKENDS, DEFAULT_CHUNK_BYTES, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--chunk-mib", type=int, default=DEFAULT_CHUNK_BYTES // 2**20)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.dim, generator=gen)  # (N, D)
    y = torch.arange(args.n) // args.per_class  # (N,)
    start = time.perf_counter()
    out = evaluate(x, y, nmi=False, backend=args.backend, chunk_bytes=args.chunk_mib * 2**20)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    print(f"N={args.n} D={args.dim} backend={args.backend} threads={torch.get_num_threads()}")
    full = 4 * args.n**2 / 2**30
    print(f"time {seconds:.1f} s, peak RSS {peak / 2**30:.2f} GiB (the full N x N float32 is {full:.1f} GiB)")
    print({k: round(v, 4) for k, v in out.items()})


if __name__ == "__main__":
    main()

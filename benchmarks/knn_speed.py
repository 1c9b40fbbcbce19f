"""Exact k-NN speed: the torch backend against faiss in the same process, and a whole Omniglot evaluation.

    OMP_NUM_THREADS=2 python benchmarks/knn_speed.py --n 30000 --dim 512 --repeats 5
    OMP_NUM_THREADS=2 python benchmarks/knn_speed.py --skip-knn          # only the Omniglot evaluation

Part 1 times leave-one-out evaluation (``evaluate(..., nmi=False)``: L2 normalisation, exact k-NN, Recall@K,
MAP@R) of random embeddings, ``--per-class`` samples per class, with each backend: ``torch`` (the default
method: each pair's distance computed once, candidates pre-selected by group minima), ``torch-previous`` (the
method before issue 15: the whole N x N matrix, top-k of full rows) and ``faiss`` (``IndexFlatL2``, if
installed: ``pip install faiss-cpu``; optional for dmlbook). The runs are interleaved (torch, ..., faiss, then
again) so that other processes on the machine slow them alike; medians are reported, and the ratio
torch / faiss of the medians.

Part 2 times the evaluation of Omniglot's 13,180 evaluation images: embedding with a SmallCNN at 28x28
(untrained weights: the cost does not depend on them; NCHW and channels_last), exact k-NN and the metrics,
with and without NMI. It
reads ``omniglot`` from ``--root``/``$DMLBOOK_DATA`` when present, else ``omniglot_embedded``.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from dmlbook import evaluation as ev
from dmlbook.data import DatasetNotFoundError, load_dataset
from dmlbook.evaluation import neighbours
from dmlbook.models.small_cnn import SmallCNN


def _previous_knn_torch(query, gallery, k, exclude_self, chunk_bytes):
    """The torch backend before issue 15, for comparison: every (chunk, G) block squared and clamped in full,
    then a top-k of every whole row (chunks of up to ``chunk_bytes``, 256 MiB by default)."""
    rows = max(1, chunk_bytes // (gallery.shape[0] * (query.element_size() + 1)))
    gallery_sq = gallery.pow(2).sum(1)  # (G,)
    dists = query.new_empty(query.shape[0], k)  # (Q, k)
    indices = torch.empty(query.shape[0], k, dtype=torch.long)  # (Q, k)
    for start in range(0, query.shape[0], rows):
        q = query[start : start + rows]  # (c, D)
        d = torch.addmm(gallery_sq.unsqueeze(0), q, gallery.T, alpha=-2.0)  # (c, G)
        d.add_(q.pow(2).sum(1, keepdim=True)).clamp_(min=0)
        if exclude_self:
            d.diagonal(offset=start).fill_(float("inf"))
        dists[start : start + rows], indices[start : start + rows] = neighbours._topk_deterministic(d, k)
    return dists.sqrt_(), indices


@contextmanager
def _previous():
    saved = neighbours._knn_torch
    neighbours._knn_torch = _previous_knn_torch
    try:
        yield
    finally:
        neighbours._knn_torch = saved


def _run(backend: str, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, dict[str, float]]:
    start, cpu = time.perf_counter(), time.process_time()
    if backend == "torch-previous":
        with _previous():
            out = ev.evaluate(x, y, nmi=False, backend="torch")
    else:
        out = ev.evaluate(x, y, nmi=False, backend=backend)
    return time.perf_counter() - start, time.process_time() - cpu, out


def knn_table(n: int, dim: int, per_class: int, repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, dim, generator=gen)  # (N, D)
    y = torch.arange(n) // per_class  # (N,)
    backends = ["torch", "torch-previous"] + (["faiss"] if neighbours._import_faiss() is not None else [])
    times: dict[str, list[float]] = {b: [] for b in backends}
    cpu: dict[str, list[float]] = {b: [] for b in backends}
    results, loads = {}, []
    for _ in range(repeats):
        for backend in backends:
            seconds, cpu_seconds, results[backend] = _run(backend, x, y)
            times[backend].append(seconds)
            cpu[backend].append(cpu_seconds)
            loads.append(os.getloadavg()[0])
    print(
        f"evaluate(nmi=False), N={n} D={dim}, {per_class} per class, threads={torch.get_num_threads()}, "
        f"{repeats} runs each (interleaved)"
    )
    print(
        f"load average during the runs (other processes; 2 = both cores busy): {min(loads):.1f}-{max(loads):.1f}"
    )
    print(f"{'backend':<15} {'median s':>9} {'min s':>7} {'max s':>7} {'median CPU s':>13}")
    for backend, t in times.items():
        print(
            f"{backend:<15} {statistics.median(t):>9.2f} {min(t):>7.2f} {max(t):>7.2f} "
            f"{statistics.median(cpu[backend]):>13.2f}"
        )
    print("torch == torch-previous:", results["torch"] == results["torch-previous"])
    if "faiss" in times:
        ratio = statistics.median(times["torch"]) / statistics.median(times["faiss"])
        print(
            f"torch / faiss = {ratio:.2f} (median over median); per run: "
            + ", ".join(f"{a / b:.2f}" for a, b in zip(times["torch"], times["faiss"]))
        )
        print(
            "metrics equal:",
            all(abs(results["torch"][k] - results["faiss"][k]) < 1e-6 for k in results["torch"]),
        )
    else:
        print("faiss is not installed (pip install faiss-cpu): no ratio")


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def omniglot_eval(root: str | None, embedding_dim: int, batch: int, repeats: int) -> None:
    try:
        name, test = "omniglot", load_dataset("omniglot", root=root, split="test")
    except DatasetNotFoundError:
        name, test = "omniglot_embedded", load_dataset("omniglot_embedded", split="test")
    x, y = test.as_tensors()  # (13180, 1, 28, 28), (13180,)
    torch.manual_seed(0)
    model = SmallCNN(1, embedding_dim).eval()
    x_cl = x.contiguous(memory_format=torch.channels_last)  # (N, 1, 28, 28) stored NHWC
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def embed(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)])  # (N, D)

    rows: dict[str, list[float]] = {
        "embedding (NCHW)": [],
        "embedding (channels_last)": [],
        "k-NN + metrics": [],
        "NMI (k-means, 659 clusters)": [],
    }
    for _ in range(repeats):
        t_embed, z = _timed(lambda: embed(model, x))
        t_cl, z_cl = _timed(lambda: embed(model_cl, x_cl))
        torch.testing.assert_close(z_cl, z, rtol=1e-4, atol=1e-5)
        t_knn, _ = _timed(lambda z=z: ev.evaluate(z, y, nmi=False))
        t_nmi, _ = _timed(lambda z=z: ev.kmeans_nmi(torch.nn.functional.normalize(z, dim=1), y, n_init=1))
        for key, t in zip(rows, (t_embed, t_cl, t_knn, t_nmi)):
            rows[key].append(t)
    med = {key: statistics.median(t) for key, t in rows.items()}
    print(
        f"\n{name} evaluation set: {len(test)} images, {test.num_classes} classes, SmallCNN -> {embedding_dim}-d, "
        f"batch {batch}, threads={torch.get_num_threads()}, {repeats} runs (medians), load {os.getloadavg()[0]:.1f}"
    )
    for key, t in med.items():
        print(f"{key:<28} {t:6.2f} s")
    base = min(med["embedding (NCHW)"], med["embedding (channels_last)"]) + med["k-NN + metrics"]
    print(f"{'total without NMI':<28} {base:6.2f} s (the faster embedding)")
    print(f"{'total with NMI':<28} {base + med['NMI (k-means, 659 clusters)']:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-knn", action="store_true", help="only the Omniglot evaluation")
    parser.add_argument("--skip-omniglot", action="store_true", help="only the k-NN table")
    parser.add_argument(
        "--root", help="folder of the official Omniglot zips (default: $DMLBOOK_DATA/omniglot)"
    )
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    if not args.skip_knn:
        knn_table(args.n, args.dim, args.per_class, args.repeats)
    if not args.skip_omniglot:
        omniglot_eval(args.root, args.embedding_dim, args.batch, max(1, min(args.repeats, 3)))


if __name__ == "__main__":
    main()

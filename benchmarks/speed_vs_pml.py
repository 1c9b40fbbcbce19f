"""Forward + backward time of dmlbook's losses against pytorch-metric-learning's on the same inputs, same process.

    python benchmarks/speed_vs_pml.py                 # B ∈ {128, 512, 1024} × D ∈ {128, 512}, CPU
    python benchmarks/speed_vs_pml.py --device cuda   # the same on a GPU
    python benchmarks/speed_vs_pml.py --sizes 512x512 --repeats 31

    python benchmarks/speed_vs_pml.py --sizes 512x512 --classes 100   # the new losses' setting (issue 16)

Each timed call: L2-normalisation, mining, loss and backward from raw embeddings (both libraries normalise inside).
Labels give 4 samples per class (P×K sampling with K = 4). The proxy and classification losses (Proxy-Anchor,
ProxyNCA, normalised softmax, ArcFace, CosFace, SoftTriple) and SupCon instead take ``--classes`` classes (default
100), labels ``i mod classes``; the proxy losses get PML's weights copied in, and their backward includes the
gradient of the weights. Runs are interleaved (dmlbook, PML, dmlbook, ...) so that drifts of the machine hit both
alike; the table reports medians and the ratio dmlbook / PML (lower is faster). OSM+CAA has no PML counterpart:
its ratio is against dmlbook's own ContrastiveLoss (goal ≤ 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dmlbook.losses import (
    ArcFaceLoss,
    ContrastiveLoss,
    CosFaceLoss,
    LiftedStructureLoss,
    MultiSimilarityLoss,
    NormalizedSoftmaxLoss,
    OSMCAALoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    RankedListLoss,
    SoftTripleLoss,
    SupConLoss,
    TripletMarginLoss,
)


def pml_cases():
    import warnings

    from pytorch_metric_learning import losses, miners

    warnings.filterwarnings("ignore", message="Values of Tp or Tn")
    triplet = losses.TripletMarginLoss(margin=0.05)
    batch_hard, semi_hard = (
        miners.BatchHardMiner(),
        miners.TripletMarginMiner(margin=0.05, type_of_triplets="semihard"),
    )
    ms, ms_miner = losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner(epsilon=0.1)
    return {
        "contrastive": (ContrastiveLoss(), losses.ContrastiveLoss()),
        "triplet batch_hard": (
            TripletMarginLoss(mining="batch_hard"),
            lambda x, y: triplet(x, y, batch_hard(x, y)),
        ),
        "multi_similarity + miner": (
            MultiSimilarityLoss(mining_epsilon=0.1),
            lambda x, y: ms(x, y, ms_miner(x, y)),
        ),
        "triplet all": (TripletMarginLoss(mining="all"), triplet),
        "triplet semi_hard": (
            TripletMarginLoss(mining="semi_hard"),
            lambda x, y: triplet(x, y, semi_hard(x, y)),
        ),
        "lifted": (LiftedStructureLoss(), losses.LiftedStructureLoss()),
        "ranked_list": (RankedListLoss(), losses.RankedListLoss(margin=0.4, Tn=10)),
    }


def class_cases(num_classes: int, dim: int, device) -> dict:
    """The losses measured on ``num_classes`` classes: (ours, PML's) with PML's weights copied into ours."""
    import math

    from pytorch_metric_learning import losses

    def paired(ours, pml, attr: str, transposed: bool):
        with torch.no_grad():
            w = getattr(pml, attr)
            ours.proxies.copy_(w.T if transposed else w)
        return ours.to(device), pml.to(device)

    c, d = num_classes, dim
    return {
        "proxy_anchor": paired(
            ProxyAnchorLoss(num_classes=c, embedding_dim=d), losses.ProxyAnchorLoss(c, d), "proxies", False
        ),
        "proxy_nca": paired(
            ProxyNCALoss(num_classes=c, embedding_dim=d), losses.ProxyNCALoss(c, d), "proxies", False
        ),
        "normalized_softmax": paired(
            NormalizedSoftmaxLoss(num_classes=c, embedding_dim=d),
            losses.NormalizedSoftmaxLoss(c, d),
            "W",
            True,
        ),
        "arcface": paired(
            ArcFaceLoss(num_classes=c, embedding_dim=d, margin=math.radians(28.6)),
            losses.ArcFaceLoss(c, d, margin=28.6),
            "W",
            True,
        ),
        "cosface": paired(CosFaceLoss(num_classes=c, embedding_dim=d), losses.CosFaceLoss(c, d), "W", True),
        "soft_triple": paired(
            SoftTripleLoss(num_classes=c, embedding_dim=d), losses.SoftTripleLoss(c, d), "fc", True
        ),
        "supcon": (SupConLoss(), losses.SupConLoss()),
    }


def time_call(fn, x, y, device) -> float:
    x = x.detach().requires_grad_(True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(x, y).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def bench(fns: dict, x, y, device, repeats: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        for fn in fns.values():
            time_call(fn, x, y, device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_call(fn, x, y, device))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["128x128", "128x512", "512x128", "512x512", "1024x128", "1024x512"]
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--losses",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these rows (e.g. contrastive osm_caa); names as in the table, spaces as underscores",
    )
    parser.add_argument("--classes", type=int, default=100, help="classes of the proxy losses and SupCon")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--skip-cubic",
        action="store_true",
        help="skip the cases where PML forms all triplets (B > 512) or all positive × negative pairs (lifted, B > 128)",
    )
    args = parser.parse_args()
    if args.repeats < 15:
        parser.error("--repeats must be at least 15")
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    print(f"{'loss':26s} {'B':>5s} {'D':>4s} {'dmlbook ms':>11s} {'PML ms':>9s} {'ratio':>6s}")
    cases = pml_cases()
    for size in args.sizes:
        b, d = (int(v) for v in size.split("x"))
        g = torch.Generator().manual_seed(0)
        x = torch.randn(b, d, generator=g).to(device)
        y = (torch.arange(b) // 4).to(device)
        for name, (ours, pml) in cases.items():
            if args.losses is not None and name.replace(" ", "_") not in args.losses:
                continue
            if args.skip_cubic and (
                (b > 512 and name in {"triplet all", "triplet semi_hard"}) or (b > 128 and name == "lifted")
            ):
                continue
            t = bench({"ours": ours, "pml": pml}, x, y, device, args.repeats, args.warmup)
            print(
                f"{name:26s} {b:5d} {d:4d} {t['ours']:11.2f} {t['pml']:9.2f} {t['ours'] / t['pml']:6.2f}",
                flush=True,
            )
        y_classes = (torch.arange(b) % args.classes).to(device)
        for name, (ours, pml) in class_cases(args.classes, d, device).items():
            if args.losses is not None and name not in args.losses:
                continue
            t = bench({"ours": ours, "pml": pml}, x, y_classes, device, args.repeats, args.warmup)
            print(
                f"{name:26s} {b:5d} {d:4d} {t['ours']:11.2f} {t['pml']:9.2f} {t['ours'] / t['pml']:6.2f}",
                flush=True,
            )
        if args.losses is not None and "osm_caa" not in args.losses:
            continue
        osm = OSMCAALoss(num_classes=b // 4, embedding_dim=d).to(device)
        t = bench({"osm": osm, "contrastive": ContrastiveLoss()}, x, y, device, args.repeats, args.warmup)
        print(
            f"{'osm_caa / own contrastive':26s} {b:5d} {d:4d} {t['osm']:11.2f} {t['contrastive']:9.2f} "
            f"{t['osm'] / t['contrastive']:6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""End-to-end fine-tuning of ImageNet MobileNetV2 on Cars196-half images, next to the frozen-feature heads.

    DMLBOOK_DATA=../shared/data OMP_NUM_THREADS=2 python benchmarks/end_to_end.py               # everything
    python benchmarks/end_to_end.py --losses osm_caa --threads 1   # one loss (runs can go in parallel) ...
    python benchmarks/end_to_end.py --report-only                  # ... then the table from the saved runs

Every loss gets the same budget and recipe (``--steps`` P x K batches of 16 x 4 images, Adam with a cosine
schedule, and ``dmlbook.train``'s defaults for ``cars196``: 224 px, the stem and bottleneck rows 1-4 frozen, a head
warm-up on frozen pooled features, the backbone at 0.3x the head's learning rate) and one seed; the test classes
are Cars196 99-196, model selection is on held-out training classes. Besides the end-to-end rows the table has
the frozen-feature heads (linear 512-d head, the same loss) on the stored MobileNet-v1 features of the
data/training benchmark, whose head is the goal's reference, and on the stored MobileNetV2 features of the
backbone that is fine-tuned here, with the raw features of both. Each run records its learning
curve (validation Recall@1 after every ``--steps / --evals`` steps, against steps, training seconds and CPU
seconds of the process) and the seconds per training step.

Time is reported three ways because the machine may be shared: ``seconds`` (wall clock of the training,
including the warm-up and the validation passes), ``cpu_seconds`` (CPU time of this process over the same span:
what a quiet machine with ``--threads`` cores would need, about ``cpu_seconds / threads`` of wall time at best)
and the number of steps. Output: ``build/benchmarks/end_to_end/<loss>.json`` per run and
``build/benchmarks/end_to_end.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from dmlbook.experiments import report
from dmlbook.train import TrainConfig, parse_key_value, train

LOSS_ARGS: dict[str, dict[str, Any]] = {
    # OSM+CAA: dmlbook.train's defaults for both cars196 and cars196_features (λ = 0.9, detached classifier), so
    # that the end-to-end and frozen-head rows use the same loss; the CAA classifier reads the pooled features
    "osm_caa": {},
    "contrastive": {},
    "triplet": {"mining": "batch_hard"},
}
LABELS = {"osm_caa": "OSM+CAA", "contrastive": "contrastive", "triplet": "triplet (batch hard)"}
OUT = Path("build/benchmarks")


def e2e_config(loss: str, args: argparse.Namespace) -> TrainConfig:
    """The end-to-end recipe, the same for every loss: ``dmlbook.train``'s defaults for ``cars196`` (image size,
    frozen stages, crop scale, head warm-up, learning rates), each replaced by its flag when given."""
    evals = max(1, args.evals)
    given = {
        k: v
        for k, v in {
            "image_size": args.image_size,
            "lr": args.lr,
            "backbone_lr_mult": args.backbone_lr_mult,
            "crop_scale_min": args.crop_scale_min,
            "head_warmup_epochs": args.warmup_epochs,
            "head_warmup_lr": args.warmup_lr,
        }.items()
        if v is not None
    }
    return TrainConfig(
        dataset="cars196",
        data_root=args.data_root,
        loss=loss,
        loss_args={**LOSS_ARGS.get(loss, {}), **dict(args.loss_arg)},
        model_args={} if args.frozen_stages is None else {"frozen_stages": args.frozen_stages},
        epochs=evals,
        batches_per_epoch=max(1, args.steps // evals),
        patience=0,
        schedule="cosine",
        seed=args.seed,
        device=args.device,
        progress=args.progress,
        out=str(OUT / "end_to_end" / f"{loss}_run"),
        **given,
    )


def run_end_to_end(loss: str, args: argparse.Namespace) -> dict[str, Any]:
    config = e2e_config(loss, args)
    steps: list[float] = []
    curve: list[dict[str, Any]] = []
    clock = {"step": time.perf_counter(), "cpu0": time.process_time()}
    path = OUT / "end_to_end" / f"{loss}.json"

    def on_step(info: Any) -> None:
        now = time.perf_counter()
        steps.append(now - clock["step"])
        clock["step"] = now

    def on_epoch(record: dict[str, Any]) -> None:
        point = {
            **record,
            "steps": record["epoch"] * config.batches_per_epoch,
            "cpu_seconds": round(time.process_time() - clock["cpu0"], 1),
        }
        curve.append(point)
        path.write_text(json.dumps({"loss": loss, "partial": True, "curve": curve}, indent=2) + "\n")
        clock["step"] = time.perf_counter()  # the validation pass is not a training step
        print(
            f"{loss}: step {point['steps']}: val recall@1 {point['val_recall@1']:.4f}  "
            f"train {point['seconds']:.0f}s  cpu {point['cpu_seconds']:.0f}s",
            file=sys.stderr,
            flush=True,
        )

    started = time.perf_counter()
    result = train(config, on_step=on_step, on_epoch=on_epoch)
    m = dict(result.metrics)
    m.update(
        wall_seconds=round(time.perf_counter() - started, 1),
        cpu_seconds=round(time.process_time() - clock["cpu0"], 1),
        steps=len(steps),
        median_step_seconds=round(statistics.median(steps[1:] or steps or [0.0]), 3),
        curve=curve,
        threads=torch.get_num_threads(),
        kind="end_to_end",
        loss=loss,
    )
    path.write_text(json.dumps(m, indent=2) + "\n")
    return m


#: the stored pooled features of cars196_half/features_mobilenet.npz: MobileNet-v1 (the data/training benchmark's
#: features) and MobileNetV2 (the backbone fine-tuned here), both of 224-px centre crops
FEATURES = {"v1": "mobilenet_v1_1.0_224_quant_emb", "v2": "mobilenet_v2_1.0_224_quant"}


def run_frozen_head(loss: str, args: argparse.Namespace, features: str = "v1") -> dict[str, Any]:
    """The data/training benchmark's frozen-feature head (dataset defaults) for ``loss``, one seed, on the stored
    MobileNet-v1 (``features="v1"``, the benchmark's) or MobileNetV2 (``"v2"``) features."""
    started, cpu0 = time.perf_counter(), time.process_time()
    result = train(
        TrainConfig(
            dataset="cars196_features",
            data_root=args.data_root,
            loss=loss,
            data_args={"key": FEATURES[features]},
            loss_args=dict(LOSS_ARGS.get(loss, {})),
            seed=args.seed,
            progress=False,
        )
    )
    m = dict(
        result.metrics,
        wall_seconds=round(time.perf_counter() - started, 1),
        cpu_seconds=round(time.process_time() - cpu0, 1),
        kind="frozen_head",
        loss=loss,
        features=features,
    )
    name = f"frozen_{loss}.json" if features == "v1" else f"frozen_{features}_{loss}.json"
    (OUT / "end_to_end" / name).write_text(json.dumps(m, indent=2) + "\n")
    return m


def build_report(losses: list[str], args: argparse.Namespace) -> str:
    folder = OUT / "end_to_end"
    e2e = {
        k: json.loads((folder / f"{k}.json").read_text()) for k in losses if (folder / f"{k}.json").is_file()
    }
    frozen = {
        k: json.loads((folder / f"frozen_{k}.json").read_text())
        for k in losses
        if (folder / f"frozen_{k}.json").is_file()
    }
    frozen_v2 = {
        k: json.loads((folder / f"frozen_v2_{k}.json").read_text())
        for k in losses
        if (folder / f"frozen_v2_{k}.json").is_file()
    }
    e2e = {k: v for k, v in e2e.items() if not v.get("partial")}
    raw = report.raw_baseline("cars196_features", args.data_root, key=FEATURES["v1"]) if frozen else None
    raw_v2 = (
        report.raw_baseline("cars196_features", args.data_root, key=FEATURES["v2"]) if frozen_v2 else None
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    for k, m in frozen.items():
        rows[f"frozen head on v1 features, {LABELS.get(k, k)}"] = [m]
    if raw_v2 is not None:
        rows["raw MobileNetV2 features (cosine k-NN)"] = [raw_v2]
    for k, m in frozen_v2.items():
        rows[f"frozen head on v2 features, {LABELS.get(k, k)}"] = [m]
    for k, m in e2e.items():
        rows[f"end to end (v2), {LABELS.get(k, k)}"] = [m]
    cfg = next(iter(e2e.values()))["config"] if e2e else {}
    title = (
        f"Cars196-half, test classes 99-196 (4,092 images), one seed (seed {args.seed}); end to end: MobileNetV2 "
        f"{cfg.get('image_size')} px, {cfg.get('epochs', 0) * (cfg.get('batches_per_epoch') or 0)} steps of "
        f"16x4 images, frozen stages {cfg.get('model_args', {}).get('frozen_stages')}, head warm-up "
        f"{cfg.get('head_warmup_epochs')} epochs at lr {cfg.get('head_warmup_lr')}, then Adam lr {cfg.get('lr')} (backbone "
        f"x{cfg.get('backbone_lr_mult')}), cosine; frozen head: linear 512-d head on the stored MobileNet-v1 features (the "
        f"data/training benchmark's; the raw-input row) or MobileNetV2 features. min/run = wall clock"
    )
    lines = [report.results_table(rows, raw=raw, title=title) if rows else "(no finished runs)", ""]
    lines += [
        "| run | steps | train min (wall) | cpu min | s/step (median, wall) | warm-up val R@1 | best val R@1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, m in e2e.items():
        lines.append(
            f"| end to end (v2), {LABELS.get(k, k)} | {m['steps']} | {m['seconds'] / 60:.1f} | "
            f"{m['cpu_seconds'] / 60:.1f} | {m['median_step_seconds']:.2f} | "
            f"{100 * (m.get('warmup_val_recall@1') or 0):.1f} | {100 * (m.get('val_recall@1') or 0):.1f} |"
        )
    lines += [
        "",
        (
            "Learning curves (validation Recall@1, held-out training classes; minutes of training including "
            "the warm-up):"
        ),
        "",
    ]
    for k, m in e2e.items():
        warmup = m.get("warmup_seconds") or 0.0
        pts = ", ".join(
            f"{p['steps']} steps / {(warmup + p['seconds']) / 60:.1f} min: {100 * p['val_recall@1']:.1f}"
            for p in m["curve"]
        )
        lines.append(
            f"- {LABELS.get(k, k)}: after the head warm-up ({warmup / 60:.1f} min) "
            f"{100 * (m.get('warmup_val_recall@1') or 0):.1f}; {pts}"
        )
    if "osm_caa" in e2e and "osm_caa" in frozen:
        gain = 100 * (e2e["osm_caa"]["recall@1"] - frozen["osm_caa"]["recall@1"])
        r1 = 100 * e2e["osm_caa"]["recall@1"]
        lines += [
            "",
            (
                f"Goal (OSM+CAA end to end >= 55 Recall@1 and >= +5 over its frozen head on the v1 features): "
                f"Recall@1 {r1:.1f} ({gain:+.1f} over that head) -> "
                f"{'met' if r1 >= 55 and gain >= 5 else 'not met'} at this budget."
            ),
        ]
    if e2e:
        plot_curves(e2e, OUT / "end_to_end_curves.png")
        lines += ["", f"Figure: {OUT / 'end_to_end_curves.png'}"]
    table = "\n".join(lines)
    (OUT / "end_to_end.md").write_text(table + "\n")
    (OUT / "end_to_end.json").write_text(
        json.dumps(
            {
                "end_to_end": e2e,
                "frozen_head": frozen,
                "raw": raw,
                "frozen_head_v2": frozen_v2,
                "raw_v2": raw_v2,
                "table": table,
            },
            indent=2,
        )
        + "\n"
    )
    return table


def plot_curves(e2e: dict[str, dict[str, Any]], path: Path) -> None:
    """Validation Recall@1 against steps and training minutes (0 steps: after the head warm-up), one line per loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for k, m in e2e.items():
        warm = m.get("warmup_val_recall@1")
        steps = ([0] if warm is not None else []) + [p["steps"] for p in m["curve"]]
        warmup = m.get("warmup_seconds") or 0.0  # the curve's seconds count from the end of the warm-up
        mins = ([warmup / 60] if warm is not None else []) + [
            (warmup + p["seconds"]) / 60 for p in m["curve"]
        ]
        vals = ([100 * warm] if warm is not None else []) + [100 * p["val_recall@1"] for p in m["curve"]]
        label = f"{LABELS.get(k, k)} (test R@1 {100 * m['recall@1']:.1f})"
        axes[0].plot(steps, vals, marker="o", label=label)
        axes[1].plot(mins, vals, marker="o", label=label)
    axes[0].set(
        xlabel="end-to-end steps of 64 images (0: after the head warm-up)",
        ylabel="validation Recall@1 (%)",
        title="learning curve by steps",
    )
    axes[1].set(
        xlabel="training minutes incl. warm-up (wall clock, 2 CPU threads)", title="learning curve by time"
    )
    axes[0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-root", default=None, help="the cars196_half folder (default $DMLBOOK_DATA/cars196_half)"
    )
    p.add_argument("--losses", nargs="+", default=list(LOSS_ARGS), choices=list(LOSS_ARGS))
    p.add_argument("--steps", type=int, default=520, help="end-to-end training steps (batches of 16 x 4)")
    p.add_argument("--evals", type=int, default=4, help="validation points on the learning curve (= epochs)")
    dflt = " (default: dmlbook.train's for cars196)"
    p.add_argument("--image-size", type=int, default=None, help="crop size in px" + dflt)
    p.add_argument(
        "--frozen-stages", type=int, default=None, help="MobileNetV2 stages kept frozen (0: none)" + dflt
    )
    p.add_argument("--lr", type=float, default=None, help="learning rate of the head" + dflt)
    p.add_argument("--backbone-lr-mult", type=float, default=None, help="backbone lr / head lr" + dflt)
    p.add_argument(
        "--crop-scale-min", type=float, default=None, help="smallest area share of the random crop" + dflt
    )
    p.add_argument(
        "--warmup-epochs", type=int, default=None, help="head warm-up epochs on frozen features" + dflt
    )
    p.add_argument("--warmup-lr", type=float, default=None, help="head warm-up learning rate" + dflt)
    p.add_argument(
        "--loss-arg",
        action="append",
        type=parse_key_value,
        default=[],
        metavar="NAME=VALUE",
        help="a loss argument for the end-to-end runs of --losses, e.g. --loss-arg lam=0.5",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (the goal is stated for 2 cores)"
    )
    p.add_argument("--skip-frozen", action="store_true", help="do not (re)run the frozen-feature heads")
    p.add_argument("--report-only", action="store_true", help="only assemble the table from saved runs")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    if args.data_root is None:
        args.data_root = str(Path(os.environ.get("DMLBOOK_DATA", "data")) / "cars196_half")
    torch.set_num_threads(args.threads)
    (OUT / "end_to_end").mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for loss in args.losses:
            if not args.skip_frozen:
                for features in FEATURES:
                    m = run_frozen_head(loss, args, features)
                    print(
                        f"frozen head on {features} features, {loss}: recall@1 {100 * m['recall@1']:.1f}",
                        file=sys.stderr,
                        flush=True,
                    )
            m = run_end_to_end(loss, args)
            print(
                f"end to end {loss}: recall@1 {100 * m['recall@1']:.1f}, {m['steps']} steps, "
                f"{m['seconds'] / 60:.1f} min",
                file=sys.stderr,
                flush=True,
            )
    print(build_report(list(LOSS_ARGS), args))
    print(f"\nwrote {OUT / 'end_to_end.json'} and {OUT / 'end_to_end.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Device readiness: every CUDA path of the project in one command, one report.

    python benchmarks/device_check.py                       # on a GPU machine: under 8 minutes
    python benchmarks/device_check.py --out build/device_check
    python benchmarks/device_check.py --quick               # short: B = 512, 5 steps, chapter 01 (CPU: 1 min)
    python benchmarks/device_check.py --parts speed mobilenet

Parts (each in its own process, each with a time limit; a failing part is reported, never raised):

* ``tests``: the CUDA tests, ``pytest -k cuda`` (the ``cuda`` marker and every test parametrised on a "cuda"
  device); skipped without a GPU, where they would all skip.
* ``speed``: the loss speed table against pytorch-metric-learning (``benchmarks/speed_vs_pml.py``) on CUDA at
  B = 512 and B = 2048 (D = 128; at 2048 without PML's all-triplets / all-pairs cases); on a CPU, B = 512 only.
* ``mobilenet``: a MobileNetV2 end-to-end training step loop with automatic mixed precision
  (``benchmarks/mobilenet_amp_steps.py``): random 224-px images in P x K batches, batch-hard triplet loss, 20
  timed steps; ImageNet weights from ``$DMLBOOK_DATA/weights`` when present, else random initialisation.
  Reports s/step, images/s and peak memory. On a CPU: 2 steps at 64 px.
* ``book``: every chapter at the ``ci`` parameter set with ``device: cuda`` (a copy of ``notebooks/params/ci.yaml``
  with only the device changed), one ``python -m dmlbook book --only NN`` per chapter; on a CPU only chapter 01,
  at ``ci`` as it is.

Writes ``OUT/device_check.md`` and ``OUT/device_check.json`` (each part's status, time, figures and the tail of
its log) and exits 0 whatever the parts did (2 for a usage error).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "build" / "device_check"
STATUSES = ("passed", "failed", "timeout", "skipped")
OUTCOMES = (("failure", "failed"), ("error", "errors"), ("skipped", "skipped"))  # JUnit XML tag -> count
LOG_TAIL = 4000  # characters of a part's output kept in the report


@dataclass
class Context:
    """What every part may read: the device, the mode and where to write."""

    cuda: bool
    quick: bool
    out: Path
    python: str = sys.executable
    deadline: float = float("inf")  # time.monotonic() by which everything must be done

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class PartResult:
    """The outcome of one part; ``figures`` are the numbers it measured (JSON-serialisable)."""

    name: str
    status: str
    seconds: float = 0.0
    note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    log: str = ""


class Skip(Exception):
    """Raised by a part that does not apply here; the message says why."""


@dataclass(frozen=True)
class Part:
    """A named check: ``run(ctx, limit)`` returns a :class:`PartResult` (status, figures) within ``limit`` seconds."""

    name: str
    description: str
    run: Callable[[Context, float], PartResult]
    limit: float  # seconds at most; the overall --budget (default 470 s) is shared in order


class PartTimeout(Exception):
    """A part's subprocess ran past its limit (``log`` holds what it printed)."""

    def __init__(self, log: str) -> None:
        super().__init__("time limit")
        self.log = log


# ---------------------------------------------------------------------------------------------- helpers
def run_command(cmd: Sequence[str], limit: float, *, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd`` at the repository root; ``(exit status, stdout + stderr)``; :class:`PartTimeout` past ``limit``."""
    merged = {**os.environ, **(env or {})}
    try:
        out = subprocess.run(
            list(cmd),
            cwd=ROOT,
            env=merged,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=max(1.0, limit),
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        text = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        raise PartTimeout(text) from None
    return out.returncode, out.stdout


def tail(text: str, n: int = LOG_TAIL) -> str:
    return text if len(text) <= n else "…" + text[-n:]


# ------------------------------------------------------------------------------------------------ parts
def part_tests(ctx: Context, limit: float) -> PartResult:
    """``pytest -k cuda`` with a JUnit XML report, counted by outcome."""
    if not ctx.cuda:
        raise Skip("no CUDA device: every CUDA test would skip")
    xml = ctx.out / "cuda_tests.xml"
    cmd = [ctx.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", f"--junitxml={xml}"]
    cmd.append("tests")
    code, log = run_command(cmd, limit)
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            tags = {child.tag for child in case}
            outcomes = [key for tag, key in OUTCOMES if tag in tags]
            counts[outcomes[0] if outcomes else "passed"] += 1
    ok = code == 0 and counts["passed"] > 0
    note = f"{counts['passed']} passed, {counts['failed']} failed, {counts['errors']} errors, {counts['skipped']} skipped"
    return PartResult("tests", "passed" if ok else "failed", note=note, figures=counts, log=log)


_ROW = re.compile(
    r"^(?P<loss>.+?)\s+(?P<b>\d+)\s+(?P<d>\d+)\s+(?P<ours>[\d.]+)\s+(?P<other>[\d.]+)\s+(?P<ratio>[\d.]+)$"
)


def parse_speed_table(text: str) -> list[dict[str, Any]]:
    """The rows of ``speed_vs_pml.py``'s table: loss, B, D, dmlbook ms, PML (or own contrastive) ms, ratio."""
    rows = []
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if m:
            rows.append(
                {
                    "loss": m["loss"].strip(),
                    "B": int(m["b"]),
                    "D": int(m["d"]),
                    "dmlbook_ms": float(m["ours"]),
                    "other_ms": float(m["other"]),
                    "ratio": float(m["ratio"]),
                }
            )
    return rows


def part_speed(ctx: Context, limit: float) -> PartResult:
    """``benchmarks/speed_vs_pml.py`` (not modified here) at B = 512 (and 2048 on a GPU), D = 128.

    On a CPU PML's lifted structure loss (all positive x negative pairs) is left out (``--skip-cubic``), and with
    ``--quick`` only four losses run. Rows printed before a time limit are kept.
    """
    device = "cuda" if ctx.cuda else "cpu"
    runs: list[list[str]] = [["--sizes", "512x128"] + ([] if ctx.cuda else ["--skip-cubic"])]
    if ctx.cuda and not ctx.quick:
        # without PML's all-triplets / all-pairs cases, which take minutes at B = 2048
        runs.append(["--sizes", "2048x128", "--skip-cubic"])
    extra = ["--repeats", "15", "--warmup", "3"]
    if ctx.quick and not ctx.cuda:
        extra += ["--losses", "contrastive", "triplet_batch_hard", "multi_similarity_+_miner", "osm_caa"]
    start, logs, rows, failed, timed_out = time.monotonic(), [], [], [], []
    for args in runs:
        left = limit - (time.monotonic() - start)
        cmd = [ctx.python, "benchmarks/speed_vs_pml.py", "--device", device, *args, *extra]
        try:
            code, log = run_command(cmd, left)
        except PartTimeout as err:
            code, log = 0, err.log
            timed_out.append(" ".join(args))
        logs.append(f"$ {' '.join(cmd[1:])}\n{log}")
        rows += parse_speed_table(log)
        if code != 0:
            failed.append(" ".join(args))
    status = "failed" if failed or not rows else "timeout" if timed_out else "passed"
    note = f"{len(rows)} rows on {device}"
    note += f"; failed: {', '.join(failed)}" if failed else ""
    note += f"; stopped at the time limit: {', '.join(timed_out)}" if timed_out else ""
    note += "" if ctx.cuda and not ctx.quick else "; B = 2048 only on a GPU without --quick"
    return PartResult(
        "speed", status, note=note, figures={"device": device, "rows": rows}, log="\n".join(logs)
    )


def part_mobilenet(ctx: Context, limit: float) -> PartResult:
    if ctx.cuda:
        steps = "5" if ctx.quick else "20"
        args = ["--device", "cuda", "--steps", steps, "--size", "224", "--batch-p", "16", "--batch-k", "4"]
    else:
        args = ["--device", "cpu", "--steps", "2", "--size", "64", "--batch-p", "4", "--batch-k", "2"]
    code, log = run_command([ctx.python, "benchmarks/mobilenet_amp_steps.py", *args], limit)
    last = log.strip().splitlines()[-1] if log.strip() else ""
    try:
        figures = json.loads(last)
    except json.JSONDecodeError:
        return PartResult("mobilenet", "failed", note=f"exit status {code}, no result line", log=log)
    ok = code == 0 and figures.get("losses_finite", False)
    note = (
        f"{figures['s_per_step']} s/step, {figures['images_per_s']} images/s, batch {figures['batch']} at "
        f"{figures['image_size']} px, AMP {figures['amp']}"
        + (f", peak {figures['peak_memory_mib']} MiB" if figures.get("peak_memory_mib") is not None else "")
    )
    return PartResult("mobilenet", "passed" if ok else "failed", note=note, figures=figures, log=log)


def gpu_param_set(folder: Path) -> Path:
    """A notebooks folder for the book runner: links to the chapters and ``params/gpu.yaml``, which is
    ``notebooks/params/ci.yaml`` with ``common.device`` set to ``cuda``."""
    import yaml

    source = ROOT / "notebooks"
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "params").mkdir(parents=True)
    for nb in sorted(source.glob("[0-9][0-9]_*.ipynb")):
        (folder / nb.name).symlink_to(nb)
    params = yaml.safe_load((source / "params" / "ci.yaml").read_text())
    params.setdefault("common", {})["device"] = "cuda"
    (folder / "params" / "gpu.yaml").write_text(
        "# written by benchmarks/device_check.py: notebooks/params/ci.yaml with device: cuda\n"
        + yaml.safe_dump(params, sort_keys=False)
    )
    return folder


def part_book(ctx: Context, limit: float) -> PartResult:
    """One ``python -m dmlbook book --only NN`` per chapter; each chapter's status, seconds and metric count."""
    chapters = sorted(p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if ctx.cuda:
        nb_dir, params = gpu_param_set(ctx.out / "notebooks_gpu"), "gpu"
        chapters = chapters[:1] if ctx.quick else chapters
    else:
        nb_dir, params, chapters = ROOT / "notebooks", "ci", chapters[:1]
    out = ctx.out / "book"
    start, rows, logs = time.monotonic(), [], []
    for nn in chapters:
        left = limit - (time.monotonic() - start)
        if left < 20:
            rows.append({"chapter": nn, "status": "skipped", "seconds": 0.0, "note": "out of time"})
            continue
        cmd = [ctx.python, "-m", "dmlbook", "book", "--params", params, "--notebooks-dir", str(nb_dir)]
        cmd += ["--only", nn, "--out", str(out)]
        t0 = time.monotonic()
        try:
            code, log = run_command(cmd, min(left, 150.0))
            status = "passed" if code == 0 else "failed"
        except PartTimeout as err:
            code, log, status = -1, err.log, "timeout"
        seconds = round(time.monotonic() - t0, 1)
        metrics = next(out.glob(f"{nn}_*/metrics.json"), None)
        n_metrics = len(json.loads(metrics.read_text())) if metrics and status == "passed" else 0
        rows.append({"chapter": nn, "status": status, "seconds": seconds, "metrics": n_metrics})
        logs.append(f"$ {' '.join(cmd)}\n{tail(log, 1500)}")
    done = [r for r in rows if r["status"] == "passed"]
    status = "passed" if len(done) == len(rows) and rows else "failed"
    note = f"{len(done)}/{len(rows)} chapters passed at {params}" + (
        "" if ctx.cuda else " (CPU: chapter 01 only)"
    )
    return PartResult(
        "book", status, note=note, figures={"param_set": params, "chapters": rows}, log="\n".join(logs)
    )


PARTS: tuple[Part, ...] = (
    Part("tests", "CUDA tests (pytest -k cuda)", part_tests, 100.0),
    Part("speed", "loss speed vs PML, B = 512 and 2048", part_speed, 100.0),
    Part("mobilenet", "MobileNetV2 AMP step loop", part_mobilenet, 60.0),
    Part("book", "every chapter at ci on the device", part_book, 300.0),  # gets what the others leave
)


# ------------------------------------------------------------------------------------------------ runner
def run_part(part: Part, ctx: Context) -> PartResult:
    """Run one part within its limit (and the overall deadline); exceptions become a failed result."""
    limit = min(part.limit, ctx.time_left())
    start = time.monotonic()
    if limit < 5:
        return PartResult(part.name, "skipped", note="out of time (overall budget spent)")
    print(f"[device_check] {part.name}: {part.description} (limit {limit:.0f} s)", flush=True)
    try:
        result = part.run(ctx, limit)
    except Skip as why:
        result = PartResult(part.name, "skipped", note=str(why))
    except PartTimeout as err:
        result = PartResult(part.name, "timeout", note=f"ran past its {limit:.0f} s limit", log=err.log)
    except Exception as err:  # noqa: BLE001  (a broken part is reported, not raised)
        result = PartResult(
            part.name, "failed", note=f"{type(err).__name__}: {err}", log=traceback.format_exc()
        )
    result.seconds = round(time.monotonic() - start, 1)
    if result.status not in STATUSES:
        result = dataclasses.replace(result, status="failed", note=f"unknown status {result.status!r}")
    print(f"[device_check] {part.name}: {result.status} in {result.seconds:.1f} s  {result.note}", flush=True)
    return result


def environment(ctx: Context) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if ctx.cuda:
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        info["torch"] = None
    try:
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        info["commit"] = None
    return info


def _table(header: Sequence[str], align: str, rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table's lines: ``header``, the alignment row (``align``: ``"l"`` or ``"r"`` per column) and one
    line per row of cells."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return [f"| {' | '.join(header)} |", rule] + [f"| {' | '.join(str(c) for c in row)} |" for row in rows]


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: a summary table, then each part's figures."""
    env = report["environment"]
    lines = [
        "# Device check",
        "",
        (
            f"{report['device']}; quick={report['quick']}; total {report['seconds']:.0f} s; torch "
            f"{env.get('torch')} (CUDA {env.get('cuda')}); {env.get('cpus')} CPUs; commit {env.get('commit')}"
        ),
        "",
    ]
    lines += _table(
        ("part", "status", "time (s)", "result"),
        "llrl",
        ((r["name"], r["status"], f"{r['seconds']:.1f}", r["note"]) for r in report["parts"]),
    )
    skipped = [f"{r['name']} ({r['note']})" for r in report["parts"] if r["status"] == "skipped"]
    if skipped:
        lines += ["", f"Skipped: {'; '.join(skipped)}."]
    for r in report["parts"]:
        fig = r["figures"]
        if r["name"] == "speed" and fig.get("rows"):
            lines += [
                "",
                f"## Loss speed, {fig['device']} (median ms, forward + backward; ratio dmlbook / PML)",
                "",
                "The osm_caa row compares with dmlbook's own ContrastiveLoss (PML has no OSM+CAA).",
                "",
            ]
            lines += _table(
                ("loss", "B", "D", "dmlbook", "PML", "ratio"),
                "lrrrrr",
                (
                    (
                        x["loss"],
                        x["B"],
                        x["D"],
                        f"{x['dmlbook_ms']:.2f}",
                        f"{x['other_ms']:.2f}",
                        f"{x['ratio']:.2f}",
                    )
                    for x in fig["rows"]
                ),
            )
        elif r["name"] == "mobilenet" and fig:
            lines += ["", "## MobileNetV2 step loop", ""] + [f"- {k}: {v}" for k, v in fig.items()]
        elif r["name"] == "book" and fig.get("chapters"):
            lines += ["", f"## Chapters at `{fig['param_set']}`", ""]
            lines += _table(
                ("chapter", "status", "time (s)", "metrics"),
                "llrr",
                ((c["chapter"], c["status"], c["seconds"], c.get("metrics", "")) for c in fig["chapters"]),
            )
    failed = [r for r in report["parts"] if r["status"] in ("failed", "timeout")]
    for r in failed:
        lines += ["", f"## Log of {r['name']} ({r['status']})", "", "```", r["log"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_report(results: list[PartResult], ctx: Context, seconds: float) -> dict[str, Any]:
    """Write ``device_check.json`` and ``device_check.md`` under ``ctx.out``; returns the report."""
    report = {
        "device": "cuda" if ctx.cuda else "cpu",
        "quick": ctx.quick,
        "seconds": round(seconds, 1),
        "environment": environment(ctx),
        "parts": [{**dataclasses.asdict(r), "log": tail(r.log)} for r in results],
    }
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "device_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (ctx.out / "device_check.md").write_text(markdown(report))
    return report


def parser(names: Sequence[str] = tuple(part.name for part in PARTS)) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a short run (a CPU check of the script itself)")
    p.add_argument("--parts", nargs="+", choices=list(names), help="only these parts (default: all)")
    p.add_argument(
        "--device", choices=("auto", "cuda", "cpu"), default="auto", help="default: cuda if available"
    )
    p.add_argument("--budget", type=float, default=470.0, help="overall seconds (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None, *, parts: Sequence[Part] = PARTS) -> int:
    cli = parser([part.name for part in parts])
    args = cli.parse_args(argv)
    if args.budget <= 0:
        cli.error("--budget must be > 0")
    if args.device == "auto":
        try:
            import torch

            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
    else:
        cuda = args.device == "cuda"
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    start = time.monotonic()
    ctx = Context(cuda=cuda, quick=args.quick, out=out, deadline=start + args.budget)
    ctx.out.mkdir(parents=True, exist_ok=True)
    chosen = [part for part in parts if args.parts is None or part.name in args.parts]
    print(
        f"[device_check] device {'cuda' if cuda else 'cpu'}, parts {', '.join(p.name for p in chosen)}",
        flush=True,
    )
    results = [run_part(part, ctx) for part in chosen]
    write_report(results, ctx, time.monotonic() - start)
    print(f"[device_check] report: {ctx.out / 'device_check.md'} and device_check.json", flush=True)
    skipped = [r for r in results if r.status == "skipped"]
    for r in skipped:
        print(f"[device_check] skipped {r.name}: {r.note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

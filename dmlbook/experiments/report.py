"""Tables and summaries of a loss comparison: several runs per loss, mean ± std, the raw-input baseline.

Used by chapter 4 of the book (``notebooks/04_benchmark_training.ipynb``), ``benchmarks/train_losses.py`` and
``benchmarks/end_to_end.py``. A *run* is the ``metrics`` dict of one :func:`dmlbook.train.run` (or
:func:`~dmlbook.train.train`; keys ``recall@1`` ... ``map@r``, ``epochs``, ...); ``runs`` maps a loss name to its
list of runs (one per seed)::

    runs = {"triplet": [m_seed0, m_seed1], "osm": [m_seed0, m_seed1]}
    summary = summarize(runs)                 # {"triplet": {"recall@1": {"mean", "std", "n"}, ...}, ...}
    print(results_table(runs, raw=raw_baseline("digits")))
    print(compare(runs)["text"])              # which loss is best, by how much, beyond the seed std or not

No pandas: plain dicts and a Markdown string.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS: tuple[str, ...] = ("recall@1", "recall@2", "recall@4", "recall@8", "map@r")

Runs = Mapping[str, Sequence[Mapping[str, Any]]]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of ``values``."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_mean_std(values: Sequence[float], *, scale: float = 100.0, digits: int = 1) -> str:
    """``"52.3 ± 0.4"``: mean ± std of ``values`` times ``scale`` (percent by default)."""
    mean, std = mean_std(values)
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _check_runs(runs: Runs, columns: Sequence[str]) -> None:
    if not runs:
        raise ValueError("runs is empty: expected {loss: [metrics of one run, ...]}")
    for loss, ms in runs.items():
        if not ms:
            raise ValueError(f"runs[{loss!r}] has no runs")
        for m in ms:
            missing = [c for c in columns if c not in m]
            if missing:
                raise KeyError(f"a run of {loss!r} lacks {missing}; it has {sorted(m)}")


def summarize(runs: Runs, columns: Sequence[str] = COLUMNS) -> dict[str, dict[str, dict[str, float]]]:
    """``{loss: {metric: {"mean", "std", "n"}}}`` over the runs of each loss (std: sample std, 0 for one run)."""
    _check_runs(runs, columns)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for loss, ms in runs.items():
        out[loss] = {}
        for c in columns:
            mean, std = mean_std([m[c] for m in ms])
            out[loss][c] = {"mean": mean, "std": std, "n": len(ms)}
    return out


def means(runs: Runs, columns: Sequence[str] = COLUMNS) -> dict[str, dict[str, float]]:
    """``{loss: {metric: mean}}``."""
    return {loss: {c: v["mean"] for c, v in s.items()} for loss, s in summarize(runs, columns).items()}


def stds(runs: Runs, columns: Sequence[str] = COLUMNS) -> dict[str, dict[str, float]]:
    """``{loss: {metric: std over runs}}``."""
    return {loss: {c: v["std"] for c, v in s.items()} for loss, s in summarize(runs, columns).items()}


def raw_baseline(
    dataset: str, root: str | None = None, *, columns: Sequence[str] = COLUMNS, **data_args: Any
) -> dict[str, float]:
    """Cosine k-NN on the raw test inputs (features, or pixels scaled to [0, 1]): the "no training" row."""
    import torch

    from ..data import load_dataset
    from ..evaluation import evaluate

    test = load_dataset(dataset, root=root, split="test", **data_args)
    data = torch.as_tensor(test.data)
    x = data.float().flatten(1)  # (N, D): features or pixels
    if data.dtype == torch.uint8:
        x = x / 255
    metrics = evaluate(x, test.labels, nmi=False)
    return {c: metrics[c] for c in columns if c in metrics}


def results_table(
    runs: Runs,
    raw: Mapping[str, float] | None = None,
    *,
    columns: Sequence[str] = COLUMNS,
    title: str | None = None,
    extra: bool = True,
) -> str:
    """A Markdown table: one row per loss with mean ± std (in %) per metric, the raw-input row first.

    With ``extra`` the table also has the mean number of epochs and the mean minutes per run (``epochs`` and
    ``wall_seconds`` or ``seconds`` of the runs; "–" where absent).
    """
    _check_runs(runs, columns)
    head = ["method", *(c.replace("recall", "R") for c in columns)] + (["epochs", "min/run"] if extra else [])
    lines = [] if title is None else [title, ""]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    if raw is not None:
        cells = [f"{100 * raw[c]:.1f}" if c in raw else "–" for c in columns]
        lines.append("| raw input (cosine k-NN) | " + " | ".join(cells) + (" | – | – |" if extra else " |"))
    for loss, ms in runs.items():
        cells = [fmt_mean_std([m[c] for m in ms]) for c in columns]
        if extra:
            epochs = [m["epochs"] for m in ms if "epochs" in m]
            secs = [m.get("wall_seconds", m.get("seconds")) for m in ms]
            secs = [s for s in secs if s is not None]
            cells.append(f"{statistics.fmean(epochs):.0f}" if epochs else "–")
            cells.append(f"{statistics.fmean(secs) / 60:.2f}" if secs else "–")
        lines.append(f"| {loss} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(runs: Runs, metric: str = "recall@1", raw: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Which loss has the best mean ``metric``, by how much it beats the runner-up, and whether that gap exceeds
    the seed-to-seed spread.

    Returns ``{"best", "runner_up", "best_mean", "runner_up_mean", "gap", "noise", "significant",
    "worst", "spread", "n", "beats_raw", "text"}``. ``noise`` is the larger of the two losses' seed stds
    (``nan`` with one seed per loss: then nothing can be said about significance, ``significant`` is None);
    ``significant`` is ``gap > noise`` (a rough rule, not a statistical test). ``spread`` is best minus worst
    mean. ``beats_raw``: the losses whose mean beats the raw input (when ``raw`` is given).
    """
    summary = summarize(runs, (metric,))
    order = sorted(summary, key=lambda k: summary[k][metric]["mean"], reverse=True)
    best = order[0]
    b = summary[best][metric]
    n = min(int(s[metric]["n"]) for s in summary.values())
    out: dict[str, Any] = {
        "metric": metric,
        "best": best,
        "best_mean": b["mean"],
        "best_std": b["std"],
        "worst": order[-1],
        "spread": b["mean"] - summary[order[-1]][metric]["mean"],
        "n": n,
    }
    if len(order) > 1:
        r = summary[order[1]][metric]
        noise = max(b["std"], r["std"]) if n > 1 else math.nan
        gap = b["mean"] - r["mean"]
        out.update(
            runner_up=order[1],
            runner_up_mean=r["mean"],
            gap=gap,
            noise=noise,
            significant=None if n < 2 else bool(gap > noise),
        )
    else:
        out.update(runner_up=None, runner_up_mean=math.nan, gap=math.nan, noise=math.nan, significant=None)
    if raw is not None and metric in raw:
        out["raw"] = raw[metric]
        out["beats_raw"] = [k for k in order if summary[k][metric]["mean"] > raw[metric]]
    out["text"] = _compare_text(out, len(order))
    return out


def _compare_text(c: dict[str, Any], count: int) -> str:
    m, pct = c["metric"], (lambda v: f"{100 * v:.1f}")
    text = f"Best {m}: {c['best']} at {pct(c['best_mean'])}"
    if c["n"] > 1:
        text += f" ± {pct(c['best_std'])} over {c['n']} seeds"
    text += "."
    if c["runner_up"] is not None:
        text += (
            f" Runner-up: {c['runner_up']} at {pct(c['runner_up_mean'])}, a gap of {pct(c['gap'])} points."
        )
        if c["significant"] is None:
            text += " With one seed per loss the seed-to-seed spread is unknown: the ranking may be noise."
        elif c["significant"]:
            text += (
                f" The gap exceeds the larger seed std ({pct(c['noise'])}): a real, if small-sample, lead."
            )
        else:
            text += (
                f" The gap is within the seed std ({pct(c['noise'])}): the top two are not distinguishable "
                "at this number of seeds."
            )
        text += f" All {count} losses span {pct(c['spread'])} points (best {c['best']}, worst {c['worst']})."
    if "raw" in c:
        beats = c["beats_raw"]
        text += f" Raw input: {pct(c['raw'])}; {len(beats)} of {count} losses beat it."
    return text

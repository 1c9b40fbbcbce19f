"""Does symmetrical synthesis improve every loss it wraps? The experiment of chapter 5.

Gu & Ko (*Symmetrical Synthesis for Deep Metric Learning*, AAAI 2020) reflect each embedding of a same-class pair
about the other, ``x'_k = β (α proj_{x_l}(x_k) − x_k)`` with ``α = 2, β = 1`` (the mirror image), and let the
loss's mining pick, for every anchor and other class, the hardest of ``{x_k, x_l, x'_k, x'_l}``
(:class:`~dmlbook.synthesis.SymmetricalSynthesis`). They report it improving the triplet, N-pair, angular and
lifted-structure losses. This module trains each loss with and without the plug-in on the same P x 2 batches from
the same initial weights, over datasets and seeds:

* :func:`study_config`: one run's :class:`~dmlbook.train.TrainConfig` (the dataset's defaults, P x 2 batches);
* :func:`make_loss`: the loss of a variant: ``"plain"``, ``"symm"`` (the paper's mining) or ``"official"``
  (the released code's N-pair form);
* :func:`mining_statistics`: what the plug-in mines on a training batch, for
  :class:`~dmlbook.train.callbacks.MiningTrace` (share of mirror images among the mined negatives, and how much
  harder the mined negative is than the hardest real sample of its class);
* :func:`train_one`: one :func:`dmlbook.train.run`, its test metrics and, optionally, its mining trace;
* :func:`run_study`: every (dataset, seed, loss, variant), each dataset's splits loaded once per seed, plus the
  raw-input k-NN baseline and the trace of the first symmetric run (:class:`SynthesisStudy`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._checks import check_choice
from ..data import list_datasets
from ..data._optional import require
from ..evaluation import evaluate
from ..losses import build_loss
from ..synthesis import SYMMETRIC_LOSSES, SymmetricalSynthesis
from ..train import METRIC_KEYS, MiningTrace, StepInfo, TrainConfig, load_splits, run, subsample

#: The variants compared for every loss: without and with the synthesis (the paper's mining).
VARIANTS = ("plain", "symm")
#: Every variant :func:`make_loss` builds: also the released code's Symm + N-pair form (NPairsLoss only).
ALL_VARIANTS = (*VARIANTS, "official")


def study_config(
    dataset: str,
    seed: int,
    *,
    pairs_per_batch: int = 64,
    epochs: int | None = None,
    batches_per_epoch: int | None = None,
    device: str = "auto",
    train_args: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """One run's resolved :class:`~dmlbook.train.TrainConfig`: the dataset's defaults, P = ``pairs_per_batch``
    classes x 2 samples per batch (P is capped at the training classes by :func:`dmlbook.train.run`), this
    study's epochs / batches (None: the dataset's), ``train_args`` for any other field."""
    return TrainConfig(
        dataset=dataset,
        seed=seed,
        device=device,
        progress=False,
        batch_p=pairs_per_batch,
        batch_k=2,
        epochs=epochs,
        batches_per_epoch=batches_per_epoch,
        **dict(train_args or {}),
    ).resolved()


def make_loss(
    name: str,
    variant: str,
    *,
    loss_args: Mapping[str, Any] | None = None,
    synthesis_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The loss ``name`` (``loss_args``: its hyper-parameters) as trained by ``variant``: ``"plain"`` (the loss
    itself), ``"symm"`` (wrapped in :class:`~dmlbook.synthesis.SymmetricalSynthesis`, ``synthesis_args`` e.g.
    ``{"ratio": 1.5}``) or ``"official"`` (the released code's Symm + N-pair, NPairsLoss only)."""
    check_choice(variant, ALL_VARIANTS, "variant")
    loss = build_loss(name, **dict(loss_args or {}))
    if variant == "plain":
        return loss
    wrappable = isinstance(loss, SYMMETRIC_LOSSES)  # a name of the wrong loss is a bad value, not a bad type
    if not wrappable:
        names = [cls.__name__ for cls in SYMMETRIC_LOSSES]
        raise ValueError(f"name: symmetrical synthesis wraps {names}; got {name!r}")
    extra = {"variant": "official"} if variant == "official" else {}
    return SymmetricalSynthesis(loss, **dict(synthesis_args or {}), **extra)


@torch.no_grad()
def mining_statistics(info: StepInfo) -> dict[str, float]:
    """What the run's :class:`~dmlbook.synthesis.SymmetricalSynthesis` mines on the training batch of ``info``
    (a ``measure`` for :class:`~dmlbook.train.callbacks.MiningTrace`).

    For every anchor ``a`` and other class ``c`` the gain is ``s(a, chosen) − s(a, hardest real sample of c)`` (the
    hardness score of the loss: cosine similarity, or the angular loss's logit), ``>= 0`` by construction.
    Returns ``synthetic_fraction`` (share of mirror images among the chosen negatives), ``mean_gain``,
    ``min_gain`` and ``gain_when_synthetic`` (mean gain where a mirror image was chosen; 0 when none was).
    """
    if not isinstance(info.loss_fn, SymmetricalSynthesis):
        raise TypeError(
            f"mining_statistics needs a SymmetricalSynthesis loss; got {type(info.loss_fn).__name__}"
        )
    m = info.loss_fn.mine(info.embeddings, info.labels)
    valid = m.hardest >= 0  # (B, C) the other classes of each anchor
    gain = (m.hardest_score - m.hardest_original_score)[valid]  # (V,) >= 0 by construction
    chosen = m.synthetic_chosen[valid]  # (V,)
    return {
        "synthetic_fraction": m.synthetic_fraction,
        "mean_gain": float(gain.mean()),
        "min_gain": float(gain.min()),
        "gain_when_synthetic": float(gain[chosen].mean()) if bool(m.synthetic_chosen.any()) else 0.0,
    }


def train_one(
    config: TrainConfig,
    loss_name: str,
    variant: str,
    splits: tuple[Any, Any, Any],
    *,
    loss_args: Mapping[str, Any] | None = None,
    synthesis_args: Mapping[str, Any] | None = None,
    track: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Train one model with :func:`dmlbook.train.run` on ``splits`` = ``(train, val or None, test)`` and evaluate
    it on the test classes. The model is initialised from ``config.seed`` — the same weights with and without
    the synthesis.

    Returns ``(metrics, history, mining)``: the test metrics (``recall@1 .. nmi``) with ``epochs``,
    ``best_epoch``, ``seconds``, ``seed`` and ``batch_p`` (P after capping); the per-epoch history; with
    ``track`` the :func:`mining_statistics` of every training batch (records of a
    :class:`~dmlbook.train.callbacks.MiningTrace`), else None.
    """
    loss_fn = make_loss(loss_name, variant, loss_args=loss_args, synthesis_args=synthesis_args)
    trace = MiningTrace(measure=mining_statistics) if track else None
    result = run(config, loss_fn=loss_fn, splits=splits, callbacks=[trace] if trace is not None else ())
    metrics = {k: result.metrics[k] for k in METRIC_KEYS}
    metrics.update(
        epochs=result.metrics["epochs"],
        best_epoch=result.metrics["best_epoch"],
        seconds=result.metrics["seconds"],
        seed=result.config.seed,
        batch_p=result.config.batch_p,
    )
    return metrics, result.history, (trace.records if trace is not None else None)


@dataclass
class SynthesisStudy:
    """What :func:`run_study` measured.

    Attributes:
        results: dataset -> loss -> variant (``"plain"``, ``"symm"``) -> one metrics dict per seed
            (:func:`train_one`'s, plus ``wall_seconds``).
        official: dataset -> one metrics dict per seed of the official Symm + N-pair (empty without it).
        raw: dataset -> cosine k-NN metrics of the raw test inputs (the same test subset).
        histories: ``(dataset, seed, loss, variant)`` -> per-epoch history.
        mining: the :func:`mining_statistics` records of the first symmetric run; ``mining_run`` its
            ``(dataset, seed, loss)`` (None when no symmetric run was made).
        batch_p: dataset -> P of its P x 2 batches (after capping at the training classes).
        runs: number of trainings; minutes: their wall-clock time.
    """

    results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]]
    official: dict[str, list[dict[str, Any]]]
    raw: dict[str, dict[str, float]]
    histories: dict[tuple[str, int, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    mining: list[dict[str, Any]] | None = None
    mining_run: tuple[str, int, str] | None = None
    batch_p: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    minutes: float = 0.0


def raw_knn(test_set: Any) -> dict[str, float]:
    """Cosine k-NN retrieval metrics of the raw test inputs (features, or pixels scaled to [0, 1]): the
    "no training" row."""
    x = torch.as_tensor(test_set.data)
    x = x.float().flatten(1) / (255 if x.dtype == torch.uint8 else 1)  # (N, D) features or pixels
    return evaluate(x, test_set.labels, nmi=False)


def run_study(
    datasets: Sequence[str],
    losses: Sequence[str],
    seeds: Mapping[str, Sequence[int]],
    *,
    loss_args: Mapping[str, Mapping[str, Any]] | None = None,
    synthesis_args: Mapping[str, Any] | None = None,
    official_npairs: bool = True,
    pairs_per_batch: int = 64,
    epochs: int | None = None,
    batches_per_epoch: int | None = None,
    test_samples: Mapping[str, int] | None = None,
    train_args: Mapping[str, Any] | None = None,
    device: str = "auto",
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> SynthesisStudy:
    """Train every loss of ``losses`` plain and with Symm for every dataset and each of its ``seeds``.

    The runs go one dataset and seed at a time, so that its splits (:func:`dmlbook.train.load_splits` of
    :func:`study_config`) load once; the test split is a seeded subset of ``test_samples[dataset]`` samples when
    given (the raw-input row uses the same subset). With ``official_npairs`` every (dataset, seed) also trains
    the released code's Symm + N-pair. The first symmetric run is traced with :func:`mining_statistics`.
    ``progress`` shows a progress bar; ``report`` receives one line per finished run.
    """
    datasets, losses = list(datasets), list(losses)
    if not datasets or not losses:
        raise ValueError("datasets and losses must each name at least one entry")
    for name in datasets:
        check_choice(name, list_datasets(), "datasets")
        if name not in seeds or not len(seeds[name]):
            raise ValueError(f"seeds must give at least one seed for every dataset; {name!r} has none")
    loss_args, test_samples = dict(loss_args or {}), dict(test_samples or {})
    for name in losses:
        make_loss(
            name, "symm", loss_args=loss_args.get(name), synthesis_args=synthesis_args
        )  # checks the names
    jobs = [(d, s, loss, v) for d in datasets for s in seeds[d] for loss in losses for v in VARIANTS]
    if official_npairs:
        jobs += [(d, s, "npairs", "official") for d in datasets for s in seeds[d]]
    jobs.sort(key=lambda r: (datasets.index(r[0]), r[1]))  # one dataset and seed at a time (a stable sort)
    study = SynthesisStudy(
        results={d: {loss: {v: [] for v in VARIANTS} for loss in losses} for d in datasets},
        official={d: [] for d in datasets},
        raw={},
        runs=len(jobs),
    )
    bar = require("tqdm.auto", "progress bars").tqdm(jobs, desc="runs") if progress else jobs
    started, loaded, splits = time.perf_counter(), None, None

    def config_for(d: str, s: int) -> TrainConfig:
        return study_config(
            d,
            s,
            pairs_per_batch=pairs_per_batch,
            epochs=epochs,
            batches_per_epoch=batches_per_epoch,
            device=device,
            train_args=train_args,
        )

    for d, s, loss, v in bar:
        if progress:
            bar.set_postfix_str(f"{d} seed {s} {loss} {v}")
        if loaded != (d, s):
            train_set, val_set, test_set = load_splits(config_for(d, s))
            splits, loaded = (train_set, val_set, subsample(test_set, test_samples.get(d) or None, s)), (d, s)
            if d not in study.raw:
                study.raw[d] = raw_knn(splits[2])
        track = study.mining is None and v == "symm"
        t0 = time.perf_counter()
        metrics, history, records = train_one(
            config_for(d, s),
            loss,
            v,
            splits,
            loss_args=loss_args.get(loss),
            synthesis_args=synthesis_args,
            track=track,
        )
        if track:
            study.mining, study.mining_run = records, (d, s, loss)
        metrics["wall_seconds"] = time.perf_counter() - t0
        (study.official[d] if v == "official" else study.results[d][loss][v]).append(metrics)
        study.histories[(d, s, loss, v)] = history
        study.batch_p[d] = metrics["batch_p"]
        if report is not None:
            report(
                f"{d:>17} seed {s} {loss:>8} {v:>8}: recall@1 {100 * metrics['recall@1']:.1f}  "
                f"map@r {100 * metrics['map@r']:.1f}  epochs {metrics['epochs']}  "
                f"{metrics['wall_seconds']:.1f} s"
            )
    study.minutes = (time.perf_counter() - started) / 60
    return study


__all__ = [
    "ALL_VARIANTS",
    "VARIANTS",
    "SynthesisStudy",
    "make_loss",
    "mining_statistics",
    "raw_knn",
    "run_study",
    "study_config",
    "train_one",
]

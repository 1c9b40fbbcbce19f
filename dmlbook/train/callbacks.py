"""Callbacks: what a caller watches during :func:`~dmlbook.train.run` without touching the loop.

A callback subclasses :class:`Callback` and overrides any of four hooks (the defaults do nothing):

* ``on_run_start(ctx: RunContext)``: once, after the model, the loss and the splits are ready (transforms set,
  images cached, head warm-up done, model and loss moved to ``ctx.device``) and before the first optimiser step;
  ``ctx`` has ``config`` (resolved, P clamped), ``model``, ``loss_fn``, ``train_set``, ``val_set``, ``test_set``
  (None when absent), ``device`` and ``dist_info``. With ``--resume`` the checkpoint is loaded after this hook.
* ``on_step(info: StepInfo)``: after every optimiser step; ``info`` has ``epoch`` (0-based), ``step`` (0-based,
  global), ``loss`` (float), ``embeddings`` (B, D) and ``labels`` (B,) of the global batch (detached),
  ``model`` and ``loss_fn``.
* ``on_epoch(record: dict)``: after every epoch, a copy of its history record ``{"epoch" (1-based), "loss",
  "val_recall@1", "lr", "seconds"}``.
* ``on_run_end(run: Run)``: once, after the test split is evaluated, with the finished
  :class:`~dmlbook.train.run.Run` (its model holds the best weights).

Under ``torchrun`` every process calls every hook. The library callbacks measure in eval mode under
``torch.no_grad`` and restore the random-number state they may touch, so a watched run trains exactly like an
unwatched one. The trackers keep their measurements in ``records`` (a list of dicts) and give one series with
``series(key)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import distributed
from .._checks import check_int
from ..diagnostics import gradient_share, trivial_fractions
from ..distances import label_masks
from ..evaluation import evaluate
from .config import TrainConfig
from .data import embed, subsample
from .loop import StepInfo

if TYPE_CHECKING:  # pragma: no cover
    from .run import Run

#: The per-record keys :class:`TrainingTracker` writes besides ``step``, ``epoch`` and ``loss``.
TRACKED_KEYS = (
    "trivial_pairs",
    "trivial_triplets",
    "own_trivial",
    "nontrivial_gradient_share",
    "recall_at_1",
)


@dataclass
class RunContext:
    """What ``on_run_start`` receives: the run's resolved config and its built pieces."""

    config: TrainConfig
    model: nn.Module
    loss_fn: nn.Module
    train_set: Any
    val_set: Any | None
    test_set: Any | None
    device: torch.device
    dist_info: distributed.DistInfo = field(default_factory=distributed.DistInfo)


class Callback:
    """Base class of the hooks a run calls (see the module docstring for what each receives)."""

    def on_run_start(self, ctx: RunContext) -> None:
        """Once, before the first optimiser step."""

    def on_step(self, info: StepInfo) -> None:
        """After every optimiser step."""

    def on_epoch(self, record: dict[str, Any]) -> None:
        """After every epoch, with a copy of its history record."""

    def on_run_end(self, run: Run) -> None:
        """Once, after the test evaluation."""


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_step=f, on_epoch=g)`` (any subset of the hooks)."""

    def __init__(
        self,
        *,
        on_run_start: Callable[[RunContext], None] | None = None,
        on_step: Callable[[StepInfo], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        on_run_end: Callable[[Run], None] | None = None,
    ) -> None:
        for name, fn in (
            ("on_run_start", on_run_start),
            ("on_step", on_step),
            ("on_epoch", on_epoch),
            ("on_run_end", on_run_end),
        ):
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"{name} must be callable; got {type(fn).__name__}")
                setattr(self, name, fn)


HOOKS = ("on_run_start", "on_step", "on_epoch", "on_run_end")


class CallbackList(Callback):
    """Several callbacks called in order. Items: :class:`Callback` instances, objects with some of the hook
    methods, or plain callables (taken as ``on_step``, like the ``on_step=`` of :func:`~dmlbook.train.fit`)."""

    def __init__(self, callbacks: Sequence[Any] = ()) -> None:
        if isinstance(callbacks, (Callback, str)) or callable(callbacks):
            raise TypeError("callbacks must be a sequence of callbacks, e.g. callbacks=[tracker]")
        self.callbacks: list[Any] = []
        for cb in callbacks:
            if isinstance(cb, Callback) or any(callable(getattr(cb, h, None)) for h in HOOKS):
                self.callbacks.append(cb)
            elif callable(cb):
                self.callbacks.append(LambdaCallback(on_step=cb))
            else:
                raise TypeError(
                    f"a callback must be a dmlbook.train.Callback (or a function of StepInfo); got "
                    f"{type(cb).__name__}"
                )

    def _call(self, hook: str, arg: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if callable(fn):
                fn(arg)

    def on_run_start(self, ctx: RunContext) -> None:
        self._call("on_run_start", ctx)

    def on_step(self, info: StepInfo) -> None:
        self._call("on_step", info)

    def on_epoch(self, record: dict[str, Any]) -> None:
        self._call("on_epoch", record)

    def on_run_end(self, run: Run) -> None:
        self._call("on_run_end", run)


@contextlib.contextmanager
def _untouched_rng(device: torch.device) -> Iterator[None]:
    """Restore torch's CPU (and this CUDA device's) random state afterwards: a DataLoader draws a seed from it."""
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=devices):
        yield


def _embed_quietly(
    model: nn.Module, dataset: Any, device: torch.device, batch_size: int
) -> tuple[Tensor, Tensor]:
    with _untouched_rng(device):
        return embed(model, dataset, device=device, batch_size=batch_size)


class _Records:
    """``records`` (list of dicts) and :meth:`series`."""

    records: list[dict[str, Any]]
    x_key = "step"

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one recorded key, as float arrays."""
        if self.records and key not in self.records[0]:
            raise KeyError(f"no key {key!r} in the records; recorded: {', '.join(self.records[0])}")
        steps = np.array([r[self.x_key] for r in self.records], dtype=float)
        return steps, np.array([r[key] for r in self.records], dtype=float)


def _check_every(every: Any) -> None:
    if every is not None:
        check_int(every, "every", 1)


@dataclass
class BatchSnapshot(Callback):
    """Keeps the embeddings and labels of the training batch at one step.

    ``BatchSnapshot(step=20)``: after training, ``.embeddings`` (B, D) and ``.labels`` (B,) hold the batch of step
    20 (detached, on the CPU), or the last batch if the run had fewer steps; ``.step_taken`` says which.
    ``BatchSnapshot(step=None)`` keeps the last batch of the run. Also usable as a plain ``on_step`` function.
    """

    step: int | None = None
    embeddings: Tensor | None = None
    labels: Tensor | None = None
    step_taken: int | None = None

    def on_step(self, info: StepInfo) -> None:
        if self.step is None or info.step <= self.step:
            self.embeddings = info.embeddings.detach().cpu().clone()
            self.labels = info.labels.detach().cpu().clone()
            self.step_taken = int(info.step)

    __call__ = on_step


@dataclass
class TrainingTracker(Callback, _Records):
    """Measures the training batch and the model every ``every`` steps (and at step 0).

    Each record has ``step``, ``epoch``, ``loss`` (the batch's training loss) and

    * ``trivial_pairs``, ``trivial_triplets``: :func:`~dmlbook.diagnostics.trivial_fractions` of the batch (probe
      margins ``triplet_margin``, ``pos_margin``, ``neg_margin``);
    * ``own_trivial``: the share of tuples the training loss itself ignores (``loss_fn.details().weights``);
    * ``nontrivial_gradient_share``: :func:`~dmlbook.diagnostics.gradient_share` of the training loss's per-pair
      gradient on the pairs that are not trivial under the pair probe;
    * ``recall_at_1``: Recall@1 of the current model on ``eval_set`` (leave-one-out), or nan without one.

    ``eval_set`` (default: the run's test split) is cut to a fixed seeded subset of at most ``eval_samples``
    samples, so that tracking stays cheap; Recall@1 on a subset is lower than on the full set (fewer neighbours
    to find) but comparable between methods and steps. With ``keep_batches`` the batch of every recorded step is
    kept in ``batches`` (``{step: (embeddings (B, D), labels (B,))}``, CPU). ``callbacks`` are called on every
    step too (e.g. a :class:`BatchSnapshot`). ``device``: where to embed ``eval_set`` (default: the run's).
    Also usable as a plain ``on_step`` function of :func:`~dmlbook.train.fit`.
    """

    eval_set: Any | None = None
    every: int = 10
    triplet_margin: float = 0.05
    pos_margin: float = 0.5
    neg_margin: float = 1.0
    eval_samples: int = 2000
    eval_batch_size: int = 512
    device: str | torch.device | None = None
    seed: int = 0
    callbacks: Sequence[Callable[[Any], None]] = ()
    keep_batches: bool = False
    records: list[dict[str, float]] = field(default_factory=list)
    batches: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive int; got {self.every!r}")
        if self.eval_set is not None:
            self.eval_set = subsample(self.eval_set, self.eval_samples, self.seed)

    def on_run_start(self, ctx: RunContext) -> None:
        if self.eval_set is None and ctx.test_set is not None:
            self.eval_set = subsample(ctx.test_set, self.eval_samples, self.seed)
        if self.device is None:
            self.device = ctx.device

    def recall_at_1(self, model: nn.Module) -> float:
        """Recall@1 of ``model`` on the (sub-sampled) evaluation set; nan without one."""
        if self.eval_set is None:
            return float("nan")
        emb, labels = _embed_quietly(
            model, self.eval_set, torch.device(self.device or "cpu"), self.eval_batch_size
        )
        return float(evaluate(emb, labels, ks=(1,), nmi=False)["recall@1"])

    def measure(self, loss_fn: nn.Module, embeddings: Tensor, labels: Tensor) -> dict[str, float]:
        """The batch measurements of one record (everything but step, epoch, loss and Recall@1)."""
        fractions = trivial_fractions(
            embeddings,
            labels,
            triplet_margin=self.triplet_margin,
            pos_margin=self.pos_margin,
            neg_margin=self.neg_margin,
        )
        own = loss_fn.details(embeddings, labels)
        # a proxy loss's gradient is per (sample, proxy), not per pair: no pair share to measure
        per_pair = own.pair_gradient.shape == fractions["nontrivial_pairs"].shape
        share = gradient_share(own.pair_gradient, fractions["nontrivial_pairs"]) if per_pair else float("nan")
        return {
            "trivial_pairs": fractions["pairs"],
            "trivial_triplets": fractions["triplets"],
            "own_trivial": own.weights.trivial_fraction,
            "nontrivial_gradient_share": share,
        }

    def on_step(self, info: StepInfo) -> None:
        for callback in self.callbacks:
            callback(info)
        if info.step % self.every:
            return
        record = {"step": int(info.step), "epoch": int(info.epoch), "loss": float(info.loss)}
        record.update(self.measure(info.loss_fn, info.embeddings, info.labels))
        record["recall_at_1"] = self.recall_at_1(info.model)
        self.records.append(record)
        if self.keep_batches:
            self.batches[int(info.step)] = (
                info.embeddings.detach().cpu().clone(),
                info.labels.detach().cpu().clone(),
            )

    __call__ = on_step


@dataclass
class RetrievalTracker(Callback, _Records):
    """Retrieval metrics of the current model on a fixed subset while it trains (a test curve).

    Every ``every`` optimiser steps (``every=None``: after every epoch), and before the first step with
    ``at_start``, it embeds ``dataset`` (default: the run's test split), cut to a fixed seeded subset of at most
    ``samples`` samples, and appends ``{"steps": optimiser steps done, "epoch": epoch (1-based; 0 at the start),
    "recall@K" for K in ks, "map@r", "r_precision"}`` (:func:`~dmlbook.evaluation.evaluate`, leave-one-out,
    without NMI) to ``records``.
    """

    dataset: Any | None = None
    every: int | None = None
    at_start: bool = False
    samples: int | None = 2000
    seed: int = 0
    ks: tuple[int, ...] = (1,)
    batch_size: int = 512
    records: list[dict[str, Any]] = field(default_factory=list)
    x_key = "steps"

    def __post_init__(self) -> None:
        _check_every(self.every)
        self._device = torch.device("cpu")
        self._model: nn.Module | None = None
        self._steps = 0
        if self.dataset is not None:
            self.dataset = subsample(self.dataset, self.samples, self.seed)

    def on_run_start(self, ctx: RunContext) -> None:
        if self.dataset is None:
            if ctx.test_set is None:
                raise ValueError("RetrievalTracker needs a dataset: the run has no test split")
            self.dataset = subsample(ctx.test_set, self.samples, self.seed)
        self._device, self._model = ctx.device, ctx.model
        if self.at_start:
            self._measure(ctx.model, epoch=0)

    def _measure(self, model: nn.Module, *, epoch: int) -> None:
        emb, labels = _embed_quietly(model, self.dataset, self._device, self.batch_size)
        scores = evaluate(emb, labels, ks=self.ks, nmi=False)
        self.records.append(
            {"steps": self._steps, "epoch": epoch, **{k: float(v) for k, v in scores.items()}}
        )

    def on_step(self, info: StepInfo) -> None:
        self._steps, self._model = info.step + 1, info.model
        if self.every is not None and self._steps % self.every == 0:
            self._measure(info.model, epoch=info.epoch + 1)

    def on_epoch(self, record: dict[str, Any]) -> None:
        if self.every is None and self._model is not None:
            self._measure(self._model, epoch=int(record["epoch"]))


@dataclass
class EmbeddingSnapshots(Callback):
    """Embeddings of one fixed subset at chosen moments of a run, for :class:`~dmlbook.viz.EmbeddingExplorer`.

    ``dataset`` (default: the run's test split) is cut to at most ``samples`` samples (seeded); it is embedded
    before the first step (``at_start``), after each optimiser-step count in ``steps``, and with the final model
    (``at_end``: the best weights). After the run, ``snapshots`` is a list of (N, D) CPU tensors, ``names`` their
    labels (``"start"``, ``"step 20"``, ``"end"``), ``labels`` the (N,) labels and ``dataset`` the subset (its
    ``data`` are the images or features to show)::

        snaps = EmbeddingSnapshots(samples=500, steps=(100,))
        run(config, callbacks=[snaps])
        EmbeddingExplorer(snaps.snapshots, snaps.labels, snapshot_names=snaps.names)
    """

    dataset: Any | None = None
    steps: Sequence[int] = ()
    at_start: bool = True
    at_end: bool = True
    samples: int | None = None
    seed: int = 0
    batch_size: int = 512
    snapshots: list[Tensor] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    labels: Tensor | None = None

    def __post_init__(self) -> None:
        self.steps = tuple(check_int(s, "steps", 1) for s in self.steps)
        self._device = torch.device("cpu")
        if self.dataset is not None:
            self.dataset = subsample(self.dataset, self.samples, self.seed)

    def _take(self, model: nn.Module, name: str) -> None:
        emb, labels = _embed_quietly(model, self.dataset, self._device, self.batch_size)
        self.snapshots.append(emb)
        self.names.append(name)
        self.labels = labels

    def on_run_start(self, ctx: RunContext) -> None:
        if self.dataset is None:
            if ctx.test_set is None:
                raise ValueError("EmbeddingSnapshots needs a dataset: the run has no test split")
            self.dataset = subsample(ctx.test_set, self.samples, self.seed)
        self._device = ctx.device
        if self.at_start:
            self._take(ctx.model, "start")

    def on_step(self, info: StepInfo) -> None:
        if info.step + 1 in self.steps:
            self._take(info.model, f"step {info.step + 1}")

    def on_run_end(self, run: Run) -> None:
        if self.at_end:
            self._take(run.model, "end")


def _details_statistics(info: StepInfo) -> dict[str, float]:
    details = info.loss_fn.details(info.embeddings, info.labels)
    w = details.weights
    positive, negative = label_masks(info.labels)  # (B, B) each
    out = {
        "loss_details": float(details.loss),
        "trivial_fraction": float(w.trivial_fraction),
        "active_positive": float((w.positive[positive] > 0).double().mean()) if bool(positive.any()) else 0.0,
        "active_negative": float((w.negative[negative] > 0).double().mean()) if bool(negative.any()) else 0.0,
    }
    if w.attention is not None:
        out["mean_attention"] = float(w.attention.double().mean())
    return out


@dataclass
class MiningTrace(Callback, _Records):
    """What the loss's mining does on the training batch, every ``every`` steps.

    Each record has ``step``, ``epoch``, ``loss`` and the statistics of ``measure(info) -> Mapping[str, float]``
    (any function of :class:`~dmlbook.train.StepInfo`, e.g. a synthesis wrapper's ``mine`` or a loss's
    ``last_terms``). The default reads ``loss_fn.details(embeddings, labels)``: ``trivial_fraction`` (tuples
    that contribute nothing), ``active_positive`` / ``active_negative`` (share of the positive / negative pairs
    with a non-zero weight), ``mean_attention`` (for a loss with class-aware attention) and ``loss_details``.
    """

    every: int = 1
    measure: Callable[[StepInfo], Mapping[str, Any]] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_every(self.every)
        self._device = torch.device("cpu")

    def on_run_start(self, ctx: RunContext) -> None:
        self._device = ctx.device
        if self.measure is None and not callable(getattr(ctx.loss_fn, "details", None)):
            raise TypeError(
                f"MiningTrace: {type(ctx.loss_fn).__name__} has no details(); pass measure= (a function "
                f"of the StepInfo that returns the statistics to record)"
            )

    def on_step(self, info: StepInfo) -> None:
        if info.step % self.every:
            return
        with _untouched_rng(self._device):
            stats = (self.measure or _details_statistics)(info)
        self.records.append(
            {
                "step": int(info.step),
                "epoch": int(info.epoch),
                "loss": float(info.loss),
                **{k: float(v) if isinstance(v, (int, float, Tensor)) else v for k, v in stats.items()},
            }
        )

"""Measurements for the book's chapters on mining: tracked runs, mining weights on one batch, run summaries.

The chapters train with :mod:`dmlbook.train` and look inside each batch with ``loss_fn.details(...)``. The
measurements that are useful outside the book live in the core and are re-exported here under their old names:
trivial tuples, gradient shares and class spread in :mod:`dmlbook.diagnostics`
(:func:`trivial_fractions`, :func:`nontrivial_gradient_share`, :func:`gradient_share`,
:func:`intra_class_spread`, :func:`relative_spread`, :func:`centroid_distances`, :func:`inter_class_distance`,
:func:`class_means`, :func:`neighbour_agreement`); the trackers :class:`TrainingTracker` and
:class:`BatchSnapshot` are the training callbacks of :mod:`dmlbook.train.callbacks`; :func:`subsample` is
:func:`dmlbook.train.data.subsample`. This module adds:

* **Training curves.** :func:`train_tracked` runs one configuration with a :class:`TrainingTracker`;
  :func:`train_methods` one per method; :func:`start_end` and :func:`first_step_reaching` read the curves.
* **What a mining method does to one batch.** :func:`normalized_weights`, :func:`pair_distances` and
  :func:`weight_profile` put the weights of different methods (0/1 masks, triplet counts, soft weights) on one
  scale and summarise whom they favour.

Everything here is deterministic: tracking never draws random numbers and runs under ``torch.no_grad`` in eval
mode, so a tracked run trains exactly like an untracked one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .diagnostics import (  # the measurements live in the core; re-exported here under their old names
    centroid_distances,
    class_means,
    gradient_share,
    inter_class_distance,
    intra_class_spread,
    neighbour_agreement,
    nontrivial_gradient_share,
    relative_spread,
    trivial_fractions,
)
from .distances import label_masks
from .evaluation import evaluate
from .losses import LossDetails, MetricLoss
from .mining import PairWeights
from .train.callbacks import (  # the trackers are training callbacks
    TRACKED_KEYS,
    BatchSnapshot,
    TrainingTracker,
)
from .train.data import subsample

__all__ = [
    "TRACKED_KEYS",
    "BatchSnapshot",
    "TrackedRun",
    "TrainingTracker",
    "centroid_distances",
    "class_means",
    "first_step_reaching",
    "gradient_share",
    "inter_class_distance",
    "intra_class_spread",
    "neighbour_agreement",
    "nontrivial_gradient_share",
    "normalized_weights",
    "pair_distances",
    "relative_spread",
    "start_end",
    "subsample",
    "summarize_runs",
    "train_methods",
    "train_tracked",
    "trivial_fractions",
    "weight_profile",
]

def start_end(values: Sequence[float] | np.ndarray, window: int = 3) -> tuple[float, float]:
    """``(first value, mean of the last window values)`` of a tracked series, ignoring nan at the end.

    The start is the first record (step 0, the untrained model's first batch); the end is averaged over the last
    ``window`` records because single batches are noisy.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("start_end needs at least one value")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int; got {window!r}")
    tail = values[-window:]
    tail = tail[~np.isnan(tail)]
    return float(values[0]), float(tail.mean()) if tail.size else float("nan")


def first_step_reaching(steps: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray,
                        threshold: float) -> float:
    """The first step at which ``values`` reaches ``threshold`` (a convergence time); nan if it never does."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if steps.shape != values.shape:
        raise ValueError(f"steps {steps.shape} and values {values.shape} must have the same shape")
    hit = np.nonzero(values >= threshold)[0]
    return float(steps[hit[0]]) if hit.size else float("nan")


# --------------------------------------------------------------------------------------------------------
# One tracked training run
# --------------------------------------------------------------------------------------------------------
@dataclass
class TrackedRun:
    """What :func:`train_tracked` returns.

    Attributes:
        name: the label given to the run (e.g. the method).
        metrics: test metrics of the final model (:func:`dmlbook.evaluation.evaluate`: ``recall@K``, ``map@r``,
            ``r_precision``, ``nmi``) plus ``seconds`` (training time).
        history: the per-epoch records of :func:`dmlbook.train.fit`.
        records: the tracker's per-step records (empty without a tracker).
        model, loss_fn, config: the trained model and loss, and the resolved config.
        test_embeddings, test_labels: the test split embedded by the final model (CPU).
        train_embeddings, train_labels: the training split embedded by it (when ``embed_train``), else None.
    """

    name: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    records: list[dict[str, float]]
    model: nn.Module
    loss_fn: MetricLoss
    config: Any
    test_embeddings: Tensor
    test_labels: Tensor
    train_embeddings: Tensor | None = None
    train_labels: Tensor | None = None


def train_tracked(config: Any, *, name: str | None = None, tracker: TrainingTracker | None = None,
                  on_step: Callable[[Any], None] | None = None, embed_train: bool = False,
                  splits: tuple[Any, Any, Any] | None = None, test_samples: int | None = None) -> TrackedRun:
    """Train one :class:`~dmlbook.train.TrainConfig` like :func:`dmlbook.train.train` and keep what the book needs.

    The steps are those of ``train`` (load the class-disjoint splits, build the model and loss, :func:`fit` with
    early stopping when the config has validation classes, evaluate the best weights on the test classes). When
    ``tracker`` has no ``eval_set`` it gets the test split (its seeded subset). ``splits`` = ``(train, val, test)``
    skips loading them again (they must match the config). ``test_samples`` evaluates on a seeded subset of that many test samples (:func:`subsample`; e.g. for
    the 35,000 Fashion-MNIST test images on a CPU). Nothing is written to disk.
    """
    from .train import build_loss_for, build_model_for, embed, fit, load_splits, resolve_device

    config = config.resolved()
    device = resolve_device(config.device)
    train_set, val_set, test_set = splits if splits is not None else load_splits(config)
    test_set = subsample(test_set, test_samples, config.seed)
    usable = int((train_set.class_counts() >= 2).sum())
    if config.batch_p > usable:  # as train(): fewer training classes than P, use them all
        config = dataclasses.replace(config, batch_p=usable)
    if tracker is not None and tracker.eval_set is None:
        tracker.eval_set = test_set
        tracker.__post_init__()
    callback = tracker if tracker is not None else on_step
    if tracker is not None and on_step is not None:
        tracker.callbacks = (*tracker.callbacks, on_step)
    torch.manual_seed(config.seed)
    model = build_model_for(config, train_set[0][0])
    loss_fn = build_loss_for(config, train_set.num_classes)
    fitted = fit(model, loss_fn, train_set, val_set=val_set, config=config, device=device, on_step=callback)
    emb, labels = embed(model, test_set, device=device, batch_size=config.eval_batch_size)
    metrics: dict[str, Any] = dict(evaluate(emb, labels, seed=config.seed))
    metrics.update(seconds=round(fitted.seconds, 3), epochs=fitted.epochs, best_epoch=fitted.best_epoch)
    train_emb = train_lab = None
    if embed_train:
        train_emb, train_lab = embed(model, train_set, device=device, batch_size=config.eval_batch_size)
    return TrackedRun(name or config.loss, metrics, fitted.history, list(tracker.records) if tracker else [],
                      model, loss_fn, config, emb, labels, train_emb, train_lab)


def train_methods(base: Any, methods: Mapping[str, tuple[str, Mapping[str, Any]]], *,
                  track: Mapping[str, Any] | None = None, callbacks: Mapping[str, Callable[[Any], None]] | None = None,
                  embed_train: bool = False, test_samples: int | None = None, progress: bool = True,
                  desc: str | None = None) -> dict[str, TrackedRun]:
    """Train ``base`` once per method, changing only the loss, and return ``{name: TrackedRun}``.

    Args:
        base: a :class:`~dmlbook.train.TrainConfig`; each run replaces its ``loss`` and ``loss_args``.
        methods: ``{name: (loss name, loss_args)}``, e.g. ``{"batch_hard": ("triplet", {"mining": "batch_hard"})}``.
        track: keyword arguments of a :class:`TrainingTracker` (one per run), or None for no tracking.
        callbacks: extra ``on_step`` callbacks by method name (e.g. a :class:`BatchSnapshot` for one run).
        embed_train: also embed the training split with each final model.
        test_samples: evaluate on a seeded subset of this many test samples (None: all).
        progress: a tqdm bar over the methods.
        desc: the bar's label.

    The splits are loaded once and shared (the runs differ only in the loss), and every run starts from the same
    seed, so the runs see the same batches in the same order and start from the same initial weights.
    """
    callbacks = dict(callbacks or {})
    unknown = sorted(set(callbacks) - set(methods))
    if unknown:
        raise ValueError(f"callbacks for unknown method(s) {unknown}; methods: {', '.join(methods)}")
    from .train import load_splits

    configs = {name: dataclasses.replace(base, loss=loss, loss_args=dict(args)) for name, (loss, args) in
               methods.items()}
    splits = load_splits(next(iter(configs.values())).resolved()) if configs else None
    names: Any = list(configs)
    if progress:
        from tqdm.auto import tqdm

        names = tqdm(names, desc=desc or "methods")
    runs = {}
    for name in names:
        tracker = TrainingTracker(**track) if track is not None else None
        runs[name] = train_tracked(configs[name], name=name, tracker=tracker, on_step=callbacks.get(name),
                                   embed_train=embed_train, splits=splits, test_samples=test_samples)
    return runs


# --------------------------------------------------------------------------------------------------------
# What a mining method does to one batch
# --------------------------------------------------------------------------------------------------------
def pair_distances(details: LossDetails) -> Tensor:
    """The (B, B) distances between the L2-normalised embeddings that ``details`` saw.

    Distance-based losses report them directly; similarity-based ones (multi-similarity) report cosine
    similarities ``s``, turned into ``d = sqrt(2 − 2s)`` here so that every method can be drawn on one axis.
    """
    if details.matrix_kind == "similarity":
        return (2.0 - 2.0 * details.matrix).clamp(min=0.0).sqrt()
    return details.matrix


def normalized_weights(weights: PairWeights) -> tuple[Tensor, Tensor]:
    """The positive and negative weights of a method, each divided by its sum over the batch.

    Methods express weights on different scales (0/1 masks, counts of active triplets, soft weights); after this
    each set sums to 1 (or is all zero when the method uses none), i.e. the *share* of the method's attention that
    each pair gets. Returns ``(positive, negative)``, (B, B) each, float64.
    """
    out = []
    for w in (weights.positive, weights.negative):
        w = w.detach().double().clamp(min=0.0)
        total = float(w.sum())
        out.append(w / total if total > 0 else w)
    return out[0], out[1]


def weight_profile(details: LossDetails, labels: Tensor) -> dict[str, float]:
    """Whom a method weights on one batch, in numbers.

    Returns (distances between L2-normalised embeddings):

    * ``kept_positive``, ``kept_negative``: share of the positive / negative pairs with a non-zero weight;
    * ``mean_d_positive``, ``mean_d_negative``: mean distance of all positive / negative pairs;
    * ``weighted_d_positive``, ``weighted_d_negative``: mean distance under the method's weights. A weighted
      positive distance above the plain mean means the method favours far (hard) positives, below it near
      (easy) ones; for negatives, below the plain mean means it favours near (hard) negatives.
    """
    d = pair_distances(details).double()
    positive, negative = label_masks(torch.as_tensor(labels, device=d.device))
    w_pos, w_neg = normalized_weights(details.weights)
    out = {}
    for kind, mask, w in (("positive", positive, w_pos), ("negative", negative, w_neg)):
        n = int(mask.sum())
        out[f"kept_{kind}"] = float(((w > 0) & mask).sum()) / n if n else float("nan")
        out[f"mean_d_{kind}"] = float(d[mask].mean()) if n else float("nan")
        out[f"weighted_d_{kind}"] = float((w * d).sum()) if float(w.sum()) > 0 else float("nan")
    return out


def summarize_runs(runs: Mapping[str, TrackedRun], key: str) -> dict[str, float]:
    """``{name: run.metrics[key]}`` for a dict of runs (e.g. ``key="recall@1"``)."""
    return {name: float(run.metrics[key]) for name, run in runs.items()}

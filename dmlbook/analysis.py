"""Measurements for the book's chapters on mining: trivial tuples, where the gradient goes, class spread.

The chapters train with :mod:`dmlbook.train` and look inside each batch with ``loss_fn.details(...)``; this
module holds the reusable measurements so that the notebooks only call them:

* **Trivial tuples.** :func:`trivial_fractions` gives the share of pairs and triplets of a batch whose loss is
  zero under two fixed *probe* criteria (a contrastive loss with margins ``m⁺``/``m⁻`` for pairs, a triplet loss
  with margin ``m`` over all triplets), the same for every method, so that methods can be compared.
* **Where the gradient goes.** :func:`nontrivial_gradient_share` is the share of a loss's per-pair gradient
  ``Σ |∂L/∂m_ij|`` that lands on the pairs that are *not* trivial under the pair probe. A hard-mining loss spends
  (almost) all of it there; a soft loss also spends some on pairs that already satisfy the margins.
* **Training curves.** :class:`TrainingTracker` is an ``on_step`` callback for :func:`dmlbook.train.fit` that
  records, every few steps, the trivial fractions, the gradient share and Recall@1 on a fixed evaluation subset;
  :func:`train_tracked` runs one configuration with it.
* **What a mining method does to one batch.** :func:`normalized_weights`, :func:`pair_distances` and
  :func:`weight_profile` put the weights of different methods (0/1 masks, triplet counts, soft weights) on one
  scale and summarise whom they favour.
* **Intra-class spread.** :func:`intra_class_spread`, :func:`relative_spread` (and :func:`centroid_distances`,
  :func:`inter_class_distance`) measure how compact the classes of an embedding are.

Everything here is deterministic: tracking never draws random numbers and runs under ``torch.no_grad`` in eval
mode, so a tracked run trains exactly like an untracked one.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_embeddings_labels
from .distances import label_masks
from .evaluation import evaluate
from .losses import ContrastiveLoss, LossDetails, MetricLoss, TripletMarginLoss
from .mining import PairWeights

__all__ = [
    "TRACKED_KEYS",
    "BatchSnapshot",
    "TrackedRun",
    "TrainingTracker",
    "centroid_distances",
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

#: The per-record keys :class:`TrainingTracker` writes besides ``step``, ``epoch`` and ``loss``.
TRACKED_KEYS = ("trivial_pairs", "trivial_triplets", "own_trivial", "nontrivial_gradient_share", "recall_at_1")


# --------------------------------------------------------------------------------------------------------
# Class spread
# --------------------------------------------------------------------------------------------------------
def _prepare(embeddings: Tensor | np.ndarray, labels: Any, normalize: bool) -> tuple[Tensor, Tensor]:
    emb = torch.as_tensor(np.asarray(embeddings) if not isinstance(embeddings, Tensor) else embeddings)
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
    emb, lab = check_embeddings_labels(emb.detach().double(), lab.to(emb.device))
    return (F.normalize(emb, dim=1) if normalize else emb), lab


def _class_means(emb: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Class means (C, D), the class index of each sample (N,) and the class sizes (C,)."""
    classes, index = torch.unique(labels, return_inverse=True)  # (C,), (N,)
    sums = torch.zeros(len(classes), emb.shape[1], dtype=emb.dtype, device=emb.device).index_add_(0, index, emb)
    sizes = torch.bincount(index, minlength=len(classes)).to(emb.dtype)  # (C,)
    return sums / sizes[:, None], index, sizes


def centroid_distances(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> Tensor:
    """Euclidean distance of every sample to the mean of its class, (N,) float64.

    With ``normalize`` (default) the embeddings are L2-normalised first, as every loss and the evaluation do.
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, index, _ = _class_means(emb, lab)
    return (emb - means[index]).norm(dim=1)


def intra_class_spread(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> float:
    """Mean squared distance of the samples to their class mean, averaged over classes (each class counts once).

    On L2-normalised embeddings (``normalize=True``, the default) a class of unit vectors with mean ``μ_c`` has
    spread ``1 − ||μ_c||²``, so the value lies in [0, 1]: 0 when every class has collapsed to one point, about 1
    when the directions inside a class are unrelated. Classes with a single sample are left out (their spread
    is 0 by definition); if no class has two samples a ValueError is raised.
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, index, sizes = _class_means(emb, lab)
    sq = ((emb - means[index]) ** 2).sum(dim=1)  # (N,)
    per_class = torch.zeros_like(sizes).index_add_(0, index, sq) / sizes  # (C,)
    keep = sizes >= 2
    if not bool(keep.any()):
        raise ValueError("intra_class_spread needs at least one class with two or more samples")
    return float(per_class[keep].mean())


def inter_class_distance(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> float:
    """Mean squared distance between the means of two different classes (over all unordered class pairs).

    The natural scale for :func:`intra_class_spread`: their ratio says how wide the classes are compared with
    how far apart they sit. Needs at least two classes.
    """
    emb, lab = _prepare(embeddings, labels, normalize)
    means, _, _ = _class_means(emb, lab)
    c = means.shape[0]
    if c < 2:
        raise ValueError("inter_class_distance needs at least two classes")
    sq = torch.cdist(means, means) ** 2  # (C, C)
    return float(sq.sum() / (c * (c - 1)))


def relative_spread(embeddings: Tensor | np.ndarray, labels: Any, *, normalize: bool = True) -> float:
    """:func:`intra_class_spread` divided by :func:`inter_class_distance`: how wide the classes are compared with
    how far apart their means sit.

    Scale-free, so it compares embeddings that live at different scales — e.g. a triplet loss with a small
    margin may squeeze the whole embedding into a small cap of the sphere, which makes every absolute spread tiny
    although the classes are not compact relative to each other. Needs two classes, one with two samples.
    """
    return intra_class_spread(embeddings, labels, normalize=normalize) / inter_class_distance(
        embeddings, labels, normalize=normalize)


# --------------------------------------------------------------------------------------------------------
# Trivial tuples and the gradient
# --------------------------------------------------------------------------------------------------------
def neighbour_agreement(embeddings: Tensor | np.ndarray, labels: Any, *, k: int = 5,
                        normalize: bool = True) -> float:
    """Share of each sample's ``k`` nearest neighbours (leave-one-out, in the embedding) that have its label,
    averaged over samples: what the eye checks on a map of the embedding, measured in the embedding itself.

    ``1/N Σ_i |{j ∈ kNN(i) : y_j = y_i}| / k``; exact k-NN (:func:`dmlbook.evaluation.knn`) on the
    L2-normalised embeddings by default (the cosine geometry of the losses). Needs ``k < N``.
    """
    from .evaluation import knn

    emb, lab = _prepare(embeddings, labels, normalize)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < emb.shape[0]:
        raise ValueError(f"k must be an integer in [1, {emb.shape[0] - 1}] (fewer than the {emb.shape[0]} samples); "
                         f"got {k!r}")
    _, index = knn(emb, emb, k, exclude_self=True, backend="torch")  # (N, k)
    return float((lab[index] == lab[:, None]).double().mean())


def gradient_share(pair_gradient: Tensor, mask: Tensor) -> float:
    """``Σ_{mask} g_ij / Σ g_ij`` for a (B, B) non-negative per-pair gradient ``g``; nan when ``Σ g = 0``."""
    if pair_gradient.shape != mask.shape:
        raise ValueError(f"pair_gradient {tuple(pair_gradient.shape)} and mask {tuple(mask.shape)} must match")
    g = pair_gradient.detach().abs().double()
    total = float(g.sum())
    if total == 0.0:
        return float("nan")
    return float(g[mask.bool()].sum()) / total


def _probes(triplet_margin: float, pos_margin: float, neg_margin: float) -> tuple[MetricLoss, MetricLoss]:
    return (ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin),
            TripletMarginLoss(margin=triplet_margin, mining="all"))


def trivial_fractions(embeddings: Tensor, labels: Tensor, *, triplet_margin: float = 0.05, pos_margin: float = 0.5,
                      neg_margin: float = 1.0) -> dict[str, Any]:
    """Share of the batch's pairs and triplets that have zero loss under two fixed probe criteria.

    * a pair is trivial when a contrastive loss with margins ``m⁺ = pos_margin``, ``m⁻ = neg_margin`` is zero
      for it: a positive already closer than ``m⁺``, a negative already farther than ``m⁻``;
    * a triplet ``(a, p, n)`` is trivial when ``d_an ≥ d_ap + triplet_margin`` (zero triplet hinge).

    Distances are between L2-normalised embeddings (so in [0, 2]). Returns ``{"pairs": float, "triplets": float,
    "nontrivial_pairs": (B, B) bool}``; the mask marks the non-trivial pairs (for :func:`gradient_share`).
    """
    pair_probe, triplet_probe = _probes(triplet_margin, pos_margin, neg_margin)
    pairs = pair_probe.details(embeddings, labels).weights
    triplets = triplet_probe.details(embeddings, labels).weights
    return {"pairs": pairs.trivial_fraction, "triplets": triplets.trivial_fraction,
            "nontrivial_pairs": pairs.weights > 0}


def nontrivial_gradient_share(loss_fn: MetricLoss, embeddings: Tensor, labels: Tensor, *,
                              pos_margin: float = 0.5, neg_margin: float = 1.0,
                              details: LossDetails | None = None) -> float:
    """Share of ``loss_fn``'s per-pair gradient ``Σ |∂L/∂m_ij|`` carried by the pairs that are not trivial.

    "Trivial" is the pair probe of :func:`trivial_fractions` (positives closer than ``pos_margin``, negatives
    farther than ``neg_margin``), independent of ``loss_fn``. 1.0 means the loss spends its whole gradient on
    pairs that still violate the margins; a lower value means part of it goes to pairs that are already fine.
    ``details`` may be passed when ``loss_fn.details(embeddings, labels)`` was already computed. nan when the
    loss has no gradient on this batch.
    """
    if details is None:
        details = loss_fn.details(embeddings, labels)
    pair_probe = ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin)
    mask = pair_probe.details(embeddings, labels).weights.weights > 0  # (B, B)
    return gradient_share(details.pair_gradient, mask)


# --------------------------------------------------------------------------------------------------------
# Tracking a training run
# --------------------------------------------------------------------------------------------------------
def subsample(dataset: Any, size: int | None, seed: int = 0) -> Any:
    """A seeded random subset of ``size`` samples of a dataset (in their original order), or the dataset itself
    when ``size`` is None or not smaller than it."""
    if size is None or len(dataset) <= size:
        return dataset
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an int >= 2 or None; got {size!r}")
    keep = np.sort(np.random.default_rng(seed).choice(len(dataset), size=size, replace=False))
    return dataset.subset(keep)


@dataclass
class BatchSnapshot:
    """An ``on_step`` callback that keeps the embeddings and labels of the batch at one training step.

    ``BatchSnapshot(step=20)``: after training, ``.embeddings`` (B, D) and ``.labels`` (B,) hold the batch of step
    20 (detached, on the CPU), or the last batch if the run had fewer steps; ``.step_taken`` says which.
    ``BatchSnapshot(step=None)`` keeps the last batch of the run.
    """

    step: int | None = None
    embeddings: Tensor | None = None
    labels: Tensor | None = None
    step_taken: int | None = None

    def __call__(self, info: Any) -> None:
        if self.step is None or info.step <= self.step:
            self.embeddings = info.embeddings.detach().cpu().clone()
            self.labels = info.labels.detach().cpu().clone()
            self.step_taken = int(info.step)


@dataclass
class TrainingTracker:
    """An ``on_step`` callback for :func:`dmlbook.train.fit` that measures the batch and the model every few steps.

    Every ``every`` steps (and at step 0) it appends one record to :attr:`records` with

    * ``step``, ``epoch``, ``loss`` (the training loss of that batch);
    * ``trivial_pairs``, ``trivial_triplets``: :func:`trivial_fractions` of the batch (probe margins below);
    * ``own_trivial``: the share of tuples the training loss itself ignores (``details().weights``);
    * ``nontrivial_gradient_share``: :func:`nontrivial_gradient_share` of the training loss on the batch;
    * ``recall_at_1``: Recall@1 of the current model on ``eval_set`` (leave-one-out), or nan without one.

    The evaluation set is cut to at most ``eval_samples`` samples (a fixed, seeded subset), so that tracking stays
    cheap; Recall@1 on a subset is lower than on the full set (fewer neighbours to find), but comparable between
    methods and steps. Tracking draws no random numbers and evaluates in eval mode, so it does not change training.
    ``callbacks`` are called on every step too (e.g. a :class:`BatchSnapshot`).
    """

    eval_set: Any | None = None
    every: int = 10
    triplet_margin: float = 0.05
    pos_margin: float = 0.5
    neg_margin: float = 1.0
    eval_samples: int = 2000
    eval_batch_size: int = 512
    device: str | torch.device = "cpu"
    seed: int = 0
    callbacks: Sequence[Callable[[Any], None]] = ()
    records: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive int; got {self.every!r}")
        if self.eval_set is not None:
            self.eval_set = subsample(self.eval_set, self.eval_samples, self.seed)

    def recall_at_1(self, model: nn.Module) -> float:
        """Recall@1 of ``model`` on the (sub-sampled) evaluation set; nan without one."""
        if self.eval_set is None:
            return float("nan")
        from .train import embed

        emb, labels = embed(model, self.eval_set, device=self.device, batch_size=self.eval_batch_size)
        return float(evaluate(emb, labels, ks=(1,), nmi=False)["recall@1"])

    def measure(self, loss_fn: MetricLoss, embeddings: Tensor, labels: Tensor) -> dict[str, float]:
        """The batch measurements of one record (everything but step, epoch, loss and Recall@1)."""
        fractions = trivial_fractions(embeddings, labels, triplet_margin=self.triplet_margin,
                                      pos_margin=self.pos_margin, neg_margin=self.neg_margin)
        own = loss_fn.details(embeddings, labels)
        share = gradient_share(own.pair_gradient, fractions["nontrivial_pairs"])
        return {"trivial_pairs": fractions["pairs"], "trivial_triplets": fractions["triplets"],
                "own_trivial": own.weights.trivial_fraction, "nontrivial_gradient_share": share}

    def __call__(self, info: Any) -> None:
        for callback in self.callbacks:
            callback(info)
        if info.step % self.every:
            return
        record = {"step": int(info.step), "epoch": int(info.epoch), "loss": float(info.loss)}
        record.update(self.measure(info.loss_fn, info.embeddings, info.labels))
        record["recall_at_1"] = self.recall_at_1(info.model)
        self.records.append(record)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one recorded key, as float arrays."""
        if self.records and key not in self.records[0]:
            raise KeyError(f"no key {key!r} in the records; recorded: {', '.join(self.records[0])}")
        steps = np.array([r["step"] for r in self.records], dtype=float)
        return steps, np.array([r[key] for r in self.records], dtype=float)


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

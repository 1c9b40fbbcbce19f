"""Spoken-word recognition across speakers, with and without a metric-learning term: the helpers of chapter 9.

Takashima, Takashima, Takiguchi & Ariki, *Dysarthric Speech Recognition Based on Deep Metric Learning*
(Interspeech 2020) recognise isolated words of a speaker whose utterances vary a lot, by adding deep metric
learning to word classification — small distances for the same word, large for different words — and combine it
with transfer learning from other speakers. Only their abstract is known here: the network, the loss, the weights
and the features below are our reconstruction, not theirs.

The experiment, one held-out speaker at a time (:func:`dmlbook.data.fsdd.speaker_split`):

* :func:`train_word_model`: a :class:`~dmlbook.models.SpeechCNN` embedding trained on the other speakers with
  :class:`~dmlbook.losses.HybridLoss` — cross-entropy alone (``"ce"``), plus a triplet term (``"ce+triplet"``)
  or plus OSM + CAA (``"ce+osm_caa"``, whose class-aware attention reads the same classifier) — by one
  :func:`dmlbook.train.run` on P x K batches (P words x K recordings);
* :func:`word_accuracy`: the share of recordings whose word the classifier gets right — on the seen speakers'
  held-out takes and on the unseen speaker (the gap between the two is the speaker variation);
* :func:`adapt_word_model`: the transfer setting — fine-tune a copy on a few takes of the new speaker (another
  :func:`dmlbook.train.run`, from the trained weights);
* :func:`prototype_accuracy`: adaptation without training — the nearest word centroid of the new speaker's
  few takes in the embedding (what a metric space is for);
* :func:`word_spread`: the intra-class variation in the embedding — how far a speaker's recordings sit from
  their word's centroid, relative to the distance between words;
* :func:`logmel_nearest_neighbour_accuracy`: the no-learning baseline (cosine 1-NN on the log-mels);
* :func:`run_fold`: all of it for one fold, as a flat ``{variant: accuracy}`` dict.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice
from ..data import DMLDataset
from ..data.fsdd import SpeakerSplit
from ..evaluation import evaluate_query_gallery
from ..losses import HybridLoss, OSMCAALoss, TripletMarginLoss
from ..train import LambdaCallback, TrainConfig, build_model_for, embed
from ..train import run as _run

#: The loss variants: word classification alone, and with a metric-learning term.
VARIANTS = ("ce", "ce+triplet", "ce+osm_caa")

__all__ = [
    "VARIANTS",
    "WordRun",
    "adapt_word_model",
    "logmel_nearest_neighbour_accuracy",
    "make_word_loss",
    "predict_words",
    "prototype_accuracy",
    "run_fold",
    "train_word_model",
    "word_accuracy",
    "word_config",
    "word_spread",
]


def make_word_loss(
    variant: str,
    *,
    num_classes: int,
    embedding_dim: int,
    metric_weight: float = 1.0,
    triplet_margin: float = 0.2,
    triplet_mining: str = "all",
    osm_args: dict[str, Any] | None = None,
) -> HybridLoss:
    """The loss of a variant: ``HybridLoss(None | TripletMarginLoss | OSMCAALoss)`` with one shared classifier.

    ``"ce+osm_caa"`` builds ``OSMCAALoss(**osm_args)`` without a classifier of its own, so that its class-aware
    attention ``a_i = p(y_i | x_i)`` comes from the word classifier (as in the paper of Wang et al.: the
    classifier trained by the cross-entropy provides the attention).
    """
    check_choice(variant, VARIANTS, "variant")
    metric: nn.Module | None = None
    if variant == "ce+triplet":
        metric = TripletMarginLoss(margin=triplet_margin, mining=triplet_mining)
    elif variant == "ce+osm_caa":
        metric = OSMCAALoss(**(osm_args or {}))
    return HybridLoss(
        metric, num_classes=num_classes, embedding_dim=embedding_dim, metric_weight=metric_weight
    )


def word_config(
    *,
    epochs: int = 10,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_p: int = 10,
    batch_k: int = 8,
    batches_per_epoch: int | None = None,
    embedding_dim: int = 64,
    model_args: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> TrainConfig:
    """A resolved :class:`~dmlbook.train.TrainConfig` for :func:`train_word_model` (``speech_cnn`` on ``fsdd``,
    Adam with a cosine schedule, no validation split, no progress printing). Its ``loss`` field is unused: the
    loss is built by :func:`make_word_loss`."""
    return TrainConfig(
        dataset="fsdd",
        loss="triplet",
        model="speech_cnn",
        model_args=dict(model_args or {}),
        embedding_dim=embedding_dim,
        epochs=epochs,
        patience=0,
        batch_p=batch_p,
        batch_k=batch_k,
        batches_per_epoch=batches_per_epoch,
        lr=lr,
        weight_decay=weight_decay,
        val_fraction=0.0,
        seed=seed,
        device=device,
        progress=False,
    ).resolved()


@dataclass
class WordRun:
    """One trained word recogniser: the embedding ``model``, its ``loss_fn`` (which owns the classifier), the
    epoch ``history``, training ``seconds`` and the ``config`` it was trained with."""

    variant: str
    model: nn.Module
    loss_fn: HybridLoss
    history: list[dict[str, Any]]
    seconds: float
    config: TrainConfig


def _device_overrides(device: str | torch.device | None) -> dict[str, Any]:
    """``run()`` overrides that train on ``device`` (None: the config's own device)."""
    return {} if device is None else {"device": torch.device(device).type}


def train_word_model(
    variant: str,
    train_set: DMLDataset,
    config: TrainConfig,
    *,
    loss_args: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    callbacks: Sequence[Any] = (),
) -> WordRun:
    """Train ``config``'s model with the ``variant``'s loss (:func:`make_word_loss`, ``loss_args`` passed on) on
    ``train_set``: one :func:`dmlbook.train.run` without validation or test split, on ``device`` (default: the
    config's). The model and then the loss's classifier are initialised from ``config.seed`` — the same initial
    weights for every variant. P is capped at the words that have >= 2 recordings (``WordRun.config``)."""
    # the model's initial weights, then the classifier's, drawn from the seed in this order (run() cannot build
    # this loss from the config, and re-seeds only what it builds itself)
    torch.manual_seed(config.seed)
    model = build_model_for(config, train_set[0][0])
    loss_fn = make_word_loss(
        variant, num_classes=train_set.num_classes, embedding_dim=config.embedding_dim, **(loss_args or {})
    )
    hooks = [*callbacks, LambdaCallback(on_epoch=on_epoch)]
    result = _run(
        config,
        model=model,
        loss_fn=loss_fn,
        splits=(train_set, None, None),
        callbacks=hooks,
        **_device_overrides(device),
    )
    return WordRun(
        variant, result.model, result.loss_fn, result.history, result.metrics["seconds"], result.config
    )


@torch.no_grad()
def predict_words(
    run: WordRun, dataset: DMLDataset, *, device: str | torch.device = "cpu", batch_size: int = 512
) -> np.ndarray:
    """The classifier's word for every recording of ``dataset`` (N,), in eval mode."""
    emb, _ = embed(run.model, dataset, device=device, batch_size=batch_size)  # (N, D)
    was_training = run.loss_fn.training
    run.loss_fn.eval()
    weight = run.loss_fn.classifier.fc.weight
    pred = run.loss_fn.predict(emb.to(weight.device, weight.dtype))  # (N,)
    run.loss_fn.train(was_training)
    return pred.cpu().numpy()


def word_accuracy(run: WordRun, dataset: DMLDataset, *, device: str | torch.device = "cpu") -> float:
    """Share of the recordings of ``dataset`` whose word the classifier predicts."""
    if len(dataset) == 0:
        raise ValueError("dataset is empty: no recordings to score")
    return float((predict_words(run, dataset, device=device) == dataset.labels).mean())


def adapt_word_model(
    run: WordRun,
    adapt_set: DMLDataset,
    *,
    epochs: int = 30,
    lr: float | None = None,
    device: str | torch.device | None = None,
) -> WordRun:
    """Fine-tune a *copy* of ``run`` (embedding and classifier, same loss) on a few recordings of a new speaker.

    Every step is one P x K batch of all words of ``adapt_set`` x K = its takes per word (at least 2, so that
    the metric term has positive pairs); ``epochs`` steps at ``lr`` (default: a third of the training rate)
    with a cosine schedule, by :func:`dmlbook.train.run` on ``device`` (default: the run's config's). The
    original ``run`` is left untouched.
    """
    counts = adapt_set.class_counts()
    present = counts[counts > 0]
    if len(present) < 2 or present.min() < 2:
        raise ValueError(
            "adapt_set needs at least 2 recordings of each of at least 2 words (adapt_takes >= 2); "
            f"got per-word counts {counts.tolist()}"
        )
    config = dataclasses.replace(
        run.config,
        epochs=epochs,
        lr=lr if lr is not None else run.config.lr / 3,
        batch_p=len(present),
        batch_k=int(present.min()),
        batches_per_epoch=1,
    )
    model, loss_fn = copy.deepcopy(run.model), copy.deepcopy(run.loss_fn)
    fine = _run(
        config, model=model, loss_fn=loss_fn, splits=(adapt_set, None, None), **_device_overrides(device)
    )
    return WordRun(run.variant, fine.model, fine.loss_fn, fine.history, fine.metrics["seconds"], fine.config)


@torch.no_grad()
def prototype_accuracy(
    run: WordRun, enrol_set: DMLDataset, test_set: DMLDataset, *, device: str | torch.device = "cpu"
) -> float:
    """Word accuracy of the nearest centroid: each word's mean L2-normalised embedding over ``enrol_set`` (a few
    takes of the new speaker), each test recording assigned to the closest centroid by cosine similarity. No
    training: the embedding is used as a metric space."""
    enrol, y_enrol = embed(run.model, enrol_set, device=device)  # (E, D), (E,)
    test, y_test = embed(run.model, test_set, device=device)  # (N, D), (N,)
    words = torch.unique(y_enrol)  # (W,)
    onehot = (y_enrol[:, None] == words[None, :]).to(enrol.dtype)  # (E, W)
    centroids = F.normalize(onehot.T @ F.normalize(enrol, dim=1), dim=1)  # (W, D)
    pred = words[(F.normalize(test, dim=1) @ centroids.T).argmax(dim=1)]  # (N,)
    return float((pred == y_test).double().mean())


@torch.no_grad()
def word_spread(
    run: WordRun, reference: DMLDataset, query: DMLDataset, *, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """How tightly ``query``'s recordings gather around their word, relative to how far apart the words are.

    Word centroids ``c_w`` are the normalised means of the L2-normalised embeddings of ``reference`` (e.g. the
    training speakers). ``within`` is the mean cosine distance ``1 − cos(e_i, c_{y_i})`` of ``query``'s recordings
    to their own word's centroid, ``between`` the mean cosine distance between two different centroids, and
    ``ratio = within / between`` — scale-free, so it compares embeddings trained with different losses: the
    smaller, the smaller the intra-class variation (the quantity deep metric learning is meant to reduce).
    """
    ref, y_ref = embed(run.model, reference, device=device)  # (R, D), (R,)
    emb, y = embed(run.model, query, device=device)  # (N, D), (N,)
    words = torch.unique(y_ref)  # (W,)
    if len(words) < 2:
        raise ValueError("reference must hold at least 2 words to measure the distance between them")
    onehot = (y_ref[:, None] == words[None, :]).to(ref.dtype)  # (R, W)
    centroids = F.normalize(onehot.T @ F.normalize(ref, dim=1), dim=1)  # (W, D)
    index = torch.searchsorted(words, y)  # (N,) position of each query's word among the centroids
    if not bool((words[index.clamp(max=len(words) - 1)] == y).all()):
        raise ValueError("query holds words that reference does not")
    within = (1.0 - (F.normalize(emb, dim=1) * centroids[index]).sum(dim=1)).mean()  # mean 1 − cos
    cos = centroids @ centroids.T  # (W, W)
    off = ~torch.eye(len(words), dtype=torch.bool)
    between = (1.0 - cos[off]).mean()
    return {"within": float(within), "between": float(between), "ratio": float(within / between)}


def _normalised_logmels(dataset: DMLDataset) -> torch.Tensor:
    """Flattened log-mels with each band's mean over time removed and unit variance per utterance: (N, M·T)."""
    x = dataset.data.float()  # (N, 1, M, T)
    x = x - x.mean(dim=-1, keepdim=True)  # (N, 1, M, T)
    x = x / x.std(dim=(-2, -1), keepdim=True).clamp(min=1e-5)  # (N, 1, M, T)
    return x.flatten(1)  # (N, M·T)


def logmel_nearest_neighbour_accuracy(train_set: DMLDataset, test_set: DMLDataset) -> float:
    """The no-learning baseline: each test recording takes the word of its nearest training recording by cosine
    similarity of the (mean- and variance-normalised) log-mel spectrograms."""
    return float(
        evaluate_query_gallery(
            _normalised_logmels(test_set),
            test_set.labels,
            _normalised_logmels(train_set),
            train_set.labels,
            ks=(1,),
            nmi=False,
        )["recall@1"]
    )


def run_fold(
    split: SpeakerSplit,
    config: TrainConfig,
    *,
    variants: Sequence[str] = VARIANTS,
    loss_args: dict[str, Any] | None = None,
    adapt_epochs: int = 30,
    adapt_lr: float | None = None,
    device: str | torch.device = "cpu",
    keep: bool = False,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Everything chapter 9 measures on one held-out speaker.

    Returns ``(accuracy, extras)``. ``accuracy`` maps ``"logmel_1nn"`` and, per variant ``v``: ``v`` (unseen
    speaker), ``"v:seen"`` (the training speakers' held-out takes), and — when ``split.adapt`` is not empty —
    ``"v:adapted"`` (after :func:`adapt_word_model`) and ``"v:enrolled"`` (:func:`prototype_accuracy`), all on
    the same recordings of the unseen speaker. ``extras`` holds the per-variant training ``seconds`` and loss
    ``history`` and, with ``keep``, the trained and adapted :class:`WordRun` objects (``runs``, ``adapted``).
    """
    for v in variants:
        check_choice(v, VARIANTS, "variants")
    acc = {"logmel_1nn": logmel_nearest_neighbour_accuracy(split.train, split.unseen_test)}
    extras: dict[str, Any] = {"seconds": {}, "history": {}, "runs": {}, "adapted": {}}
    for v in variants:
        run = train_word_model(v, split.train, config, loss_args=loss_args, device=device)
        acc[v] = word_accuracy(run, split.unseen_test, device=device)
        if len(split.seen_test):
            acc[f"{v}:seen"] = word_accuracy(run, split.seen_test, device=device)
        extras["seconds"][v] = run.seconds
        extras["history"][v] = run.history
        if len(split.adapt):
            adapted = adapt_word_model(run, split.adapt, epochs=adapt_epochs, lr=adapt_lr, device=device)
            acc[f"{v}:adapted"] = word_accuracy(adapted, split.unseen_test, device=device)
            acc[f"{v}:enrolled"] = prototype_accuracy(run, split.adapt, split.unseen_test, device=device)
            extras["seconds"][v] += adapted.seconds
            if keep:
                extras["adapted"][v] = adapted
        if keep:
            extras["runs"][v] = run
    return acc, extras

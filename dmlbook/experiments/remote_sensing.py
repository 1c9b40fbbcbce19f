"""Class centres and a structured metric for scene classification: the experiment of chapter 7.

Gong, Zhong, Hu & Hua (*Joint Learning of the Center Points and Deep Metrics for Land-Use Classification in Remote
Sensing*, Remote Sensing 11(1):76, 2019) train a CNN with three kinds of supervision at once: point-wise
(cross-entropy), pair-wise (a structured metric loss over the batch) and class-wise (learned class centres, the
features pulled to their centre and the centres pushed apart). With :class:`~dmlbook.losses.CentreStructuredLoss`

    ``L = w_CE L_CE + λ1 L_lifted + λ2 L_intra + λ3 L_inter``

(our reconstruction from the paper's abstract: the lifted-structure form, the squared-distance centre terms and
every weight are ours), the ablation adds the terms one at a time:

* :func:`canonical_variant` / :func:`term_weights`: a variant such as ``"ce+lifted+centre"`` and its weights
  (``ce`` always on; ``lifted`` -> λ1; ``centre`` -> λ2 and λ3);
* :func:`make_loss`: the variant's :class:`~dmlbook.losses.CentreStructuredLoss`;
* :class:`ClassMeanCentres`: a callback that starts the centres at the class means of the training split under
  the untrained model (instead of random unit vectors);
* :func:`loss_terms`: the four unweighted terms after a step, a ``measure`` for
  :class:`~dmlbook.train.callbacks.MiningTrace`;
* :func:`train_variant`: one :func:`dmlbook.train.run` of a variant on a stratified (train, test) split and its
  measures: the classifier's test accuracy, Recall@1 among the test images, the geometry of the test embeddings
  (:func:`~dmlbook.diagnostics.intra_class_spread`, :func:`~dmlbook.diagnostics.inter_class_distance`), the
  learned centres and the class means of the training embeddings (:class:`CentreRun`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..diagnostics import class_means, inter_class_distance, intra_class_spread
from ..losses import CentreStructuredLoss
from ..train import Callback, MiningTrace, RunContext, StepInfo, TrainConfig, build_model_for, embed, run

#: The parts a variant combines: point-wise (cross-entropy), pair-wise (lifted structure), class-wise (centres).
PARTS = ("ce", "lifted", "centre")
#: The ablation: each term added to the cross-entropy, and all three (the paper's method).
VARIANTS = ("ce", "ce+lifted", "ce+centre", "ce+lifted+centre")


def canonical_variant(variant: str) -> str:
    """``variant``'s parts in the order of :data:`PARTS`, joined by ``+`` (``"centre + ce"`` -> ``"ce+centre"``).

    Raises ValueError for an unknown part, an empty variant or one without ``ce`` (the classifier that gives
    the accuracy)."""
    if not isinstance(variant, str):
        raise TypeError(f"variant must be a str such as 'ce+lifted'; got {type(variant).__name__}")
    parts = [p.strip() for p in variant.split("+") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts or "ce" not in parts:
        raise ValueError(
            f"variant {variant!r} must combine {PARTS} with '+' and include 'ce' (the classifier "
            f"that gives the accuracy); unknown parts {unknown}"
        )
    return "+".join(p for p in PARTS if p in parts)


def term_weights(
    variant: str, *, lifted_weight: float = 1.0, centre_weight: float = 1.0, separation_weight: float = 1.0
) -> dict[str, float]:
    """The :class:`~dmlbook.losses.CentreStructuredLoss` weights of ``variant``: ``ce_weight`` 1, ``lifted_weight``
    λ1 when ``lifted`` is on, ``intra_weight`` λ2 = ``centre_weight`` and ``inter_weight`` λ3 =
    ``separation_weight`` when ``centre`` is on (0 for a part that is off)."""
    parts = canonical_variant(variant).split("+")
    return {
        "ce_weight": 1.0,
        "lifted_weight": lifted_weight if "lifted" in parts else 0.0,
        "intra_weight": centre_weight if "centre" in parts else 0.0,
        "inter_weight": separation_weight if "centre" in parts else 0.0,
    }


def make_loss(
    variant: str,
    *,
    num_classes: int,
    embedding_dim: int,
    lifted_weight: float = 1.0,
    centre_weight: float = 1.0,
    separation_weight: float = 1.0,
    **loss_args: Any,
) -> CentreStructuredLoss:
    """The variant's :class:`~dmlbook.losses.CentreStructuredLoss` (weights from :func:`term_weights`;
    ``loss_args``: its other hyper-parameters, e.g. ``inter_margin``, ``neg_margin``, ``centre_update``)."""
    weights = term_weights(
        variant, lifted_weight=lifted_weight, centre_weight=centre_weight, separation_weight=separation_weight
    )
    return CentreStructuredLoss(num_classes=num_classes, embedding_dim=embedding_dim, **loss_args, **weights)


class ClassMeanCentres(Callback):
    """Before the first step, set the loss's centres to the class means of the normalised training embeddings
    under the untrained model (:meth:`~dmlbook.losses.CentreStructuredLoss.reset_centres`)."""

    def on_run_start(self, ctx: RunContext) -> None:
        if not callable(getattr(ctx.loss_fn, "reset_centres", None)):
            raise TypeError(
                f"ClassMeanCentres needs a loss with reset_centres(); got {type(ctx.loss_fn).__name__}"
            )
        emb, labels = embed(
            ctx.model,
            ctx.train_set,
            device=ctx.device,
            batch_size=ctx.config.eval_batch_size,
            num_workers=ctx.config.num_workers,
        )  # (N, D), (N,)
        ctx.loss_fn.reset_centres(emb, labels)


def loss_terms(info: StepInfo) -> Mapping[str, Tensor]:
    """The four unweighted terms of the step's batch (``loss_fn.last_terms``: ``ce lifted intra inter``)."""
    return info.loss_fn.last_terms


@dataclass
class CentreRun:
    """One trained variant, measured on the test split (embeddings L2-normalised where a measure says so).

    Attributes:
        variant: the canonical variant; accuracy: the loss's classifier on the test split; recall_at_1:
            retrieval among the test samples; intra, inter: :func:`~dmlbook.diagnostics.intra_class_spread` and
            :func:`~dmlbook.diagnostics.inter_class_distance` of the test embeddings.
        embeddings, labels: the test embeddings (N, D) and labels (N,); train_means: the class means (C, D) of
            the normalised training embeddings; centres: the loss's centres (C, D) after training.
        trace: with ``track``, one :class:`~dmlbook.train.callbacks.MiningTrace` record per step (``step``,
            ``epoch``, ``loss`` and the :func:`loss_terms`), else empty; seconds: training time.
        centre_accuracy: accuracy of the nearest centre (variants with ``centre`` only, else None).
    """

    variant: str
    accuracy: float
    recall_at_1: float
    intra: float
    inter: float
    embeddings: Tensor
    labels: Tensor
    train_means: Tensor
    centres: Tensor
    seconds: float
    trace: list[dict[str, Any]] = field(default_factory=list)
    centre_accuracy: float | None = None


def train_variant(
    variant: str,
    config: TrainConfig,
    train_set: Any,
    test_set: Any,
    *,
    loss_args: Mapping[str, Any] | None = None,
    init_centres: bool = True,
    track: bool = False,
) -> CentreRun:
    """Train ``variant`` (:func:`make_loss` with ``loss_args``) on ``train_set`` by one :func:`dmlbook.train.run`
    of ``config`` (no validation split: a fixed number of epochs) and measure it on ``test_set`` (the same classes).

    The model and then the loss (classifier, centres) are initialised from ``config.seed``, so every variant of a
    repeat starts from the same network. ``init_centres``: :class:`ClassMeanCentres`; ``track``: record
    :func:`loss_terms` after every step (``CentreRun.trace``).
    """
    variant = canonical_variant(variant)
    config = config.resolved()
    torch.manual_seed(config.seed)  # the model's initial weights, then the classifier's and centres'
    model = build_model_for(config, train_set[0][0])
    loss_fn = make_loss(
        variant,
        num_classes=train_set.num_classes,
        embedding_dim=config.embedding_dim,
        **dict(loss_args or {}),
    )
    trace = MiningTrace(measure=loss_terms) if track else None
    callbacks = [c for c in (ClassMeanCentres() if init_centres else None, trace) if c is not None]
    result = run(
        config,
        model=model,
        loss_fn=loss_fn,
        splits=(train_set, None, test_set),
        callbacks=callbacks,
        embed_train=True,
        nmi=False,
    )
    emb, labels = result.test_embeddings, result.test_labels  # (N, D), (N,)
    loss_fn = loss_fn.cpu()
    out = CentreRun(
        variant=variant,
        accuracy=float((loss_fn.predict(emb) == labels).float().mean()),
        recall_at_1=float(result.metrics["recall@1"]),
        intra=intra_class_spread(emb, labels),
        inter=inter_class_distance(emb, labels),
        embeddings=emb,
        labels=labels,
        train_means=class_means(result.train_embeddings, result.train_labels)[1],
        centres=loss_fn.centres.detach().clone(),
        seconds=float(result.metrics["seconds"]),
        trace=trace.records if trace is not None else [],
    )
    if "centre" in variant:
        out.centre_accuracy = float((loss_fn.predict(emb, by="centre") == labels).float().mean())
    return out


__all__ = [
    "PARTS",
    "VARIANTS",
    "CentreRun",
    "ClassMeanCentres",
    "canonical_variant",
    "loss_terms",
    "make_loss",
    "term_weights",
    "train_variant",
]

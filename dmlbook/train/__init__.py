"""Train an embedding and measure it: one loop for one process or ``torchrun``, checkpoints, ``metrics.json``.

Command line::

    python -m dmlbook train --dataset cars196_features --data-root ../data/cars196_half --loss osm_caa
    torchrun --nproc_per_node 2 -m dmlbook train --dataset fashion_mnist --loss triplet

Python::

    from dmlbook.train import TrainConfig, run, train
    result = run(TrainConfig(dataset="digits", loss="contrastive", epochs=5))   # nothing written
    result.metrics["recall@1"], result.test_embeddings.shape
    train(TrainConfig(dataset="digits", loss="contrastive", out="build/digits"))  # + OUT/metrics.json ...

What one run does (:func:`run`, the only place that does it):

1. loads the dataset's standard class-disjoint ``train`` / ``test`` split and carves ``val_fraction`` of the
   training classes into a validation split (early stopping looks only at those classes, never at test);
2. builds the dataset's default model (:data:`DATASET_DEFAULTS`, overridable) and the loss by name;
3. trains on P x K batches (:class:`~dmlbook.data.PKSampler`; an *epoch* is ``batches_per_epoch`` batches,
   by default as many as cover the training set once), with the chosen optimiser and schedule, automatic mixed
   precision on CUDA, a progress bar, and (:func:`train`) a checkpoint after every epoch (``--resume`` continues
   from it and reaches the same result as an uninterrupted run);
4. after each epoch measures Recall@1 on the validation classes, keeps the best weights and stops after
   ``patience`` epochs without improvement. For image backbones (``--model mobilenet_v2``) an optional head
   warm-up comes first (``head_warmup_epochs``: the embedding layer, and the CAA classifier of ``osm_caa``,
   trained on the frozen backbone's pooled features of centre crops, chosen on the validation classes), the
   images can be decoded once into memory (``cache_images``), and ``osm_caa`` reads its class-aware attention
   from a classifier on the backbone's pooled features (:class:`PooledFeatureCAA`), as in the paper;
5. evaluates the best weights on the test classes (:func:`~dmlbook.evaluation.evaluate`); :func:`train` writes
   ``OUT/metrics.json`` (flat keys ``recall@1 recall@2 recall@4 recall@8 map@r r_precision nmi val_recall@1
   epochs seconds`` ... and the full ``config``) and ``OUT/history.json`` (one record per epoch).

Callbacks (:mod:`dmlbook.train.callbacks`) watch a run: trivial fractions and gradient shares
(:class:`TrainingTracker`), a test curve (:class:`RetrievalTracker`), embedding snapshots for the explorer
(:class:`EmbeddingSnapshots`) and mining traces (:class:`MiningTrace`).

Determinism: batches depend only on ``(seed, epoch)`` and the torch generator is re-seeded from
``(seed, epoch)`` at the start of every epoch, so the same seed gives the same metrics on CPU, and a resumed
run continues exactly where the interrupted one stopped.

Modules: :mod:`~dmlbook.train.config` (settings and recipes), :mod:`~dmlbook.train.data` (splits, batches,
embedding), :mod:`~dmlbook.train.build` (model, loss, transforms), :mod:`~dmlbook.train.loop` (:func:`fit`),
:mod:`~dmlbook.train.warmup`, :mod:`~dmlbook.train.files` and :mod:`~dmlbook.train.checkpoint` (the output
folder), :mod:`~dmlbook.train.callbacks`, :mod:`~dmlbook.train.run` (:func:`run`, :func:`train`),
:mod:`~dmlbook.train.cli`.
"""

from __future__ import annotations

from ..losses.pooled_caa import PooledFeatureCAA
from .build import build_loss_for, build_model_for, image_size_for, image_transform, set_image_transforms
from .callbacks import (
    TRACKED_KEYS,
    BatchSnapshot,
    Callback,
    CallbackList,
    EmbeddingSnapshots,
    LambdaCallback,
    MiningTrace,
    RetrievalTracker,
    RunContext,
    TrainingTracker,
)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .cli import config_from_args, main, parse_key_value, parser
from .config import (
    DATASET_DEFAULTS,
    DEVICES,
    METRIC_KEYS,
    NOT_RESULT_FIELDS,
    OPTIMIZERS,
    SCHEDULES,
    ConfigError,
    TrainConfig,
    resolve_device,
)
from .data import embed, iterate_batches, load_splits, subsample
from .files import OutputBusyError, OutputError, OutputLock, atomic_write, prepare_output
from .loop import FitResult, StepInfo, TrainingDiverged, fit, make_optimizer, make_schedule
from .run import Run, TrainResult, run, train
from .warmup import warm_up_head

__all__ = [
    "DATASET_DEFAULTS",
    "DEVICES",
    "METRIC_KEYS",
    "NOT_RESULT_FIELDS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TRACKED_KEYS",
    "BatchSnapshot",
    "Callback",
    "CallbackList",
    "CheckpointError",
    "ConfigError",
    "EmbeddingSnapshots",
    "FitResult",
    "LambdaCallback",
    "MiningTrace",
    "OutputBusyError",
    "OutputError",
    "OutputLock",
    "PooledFeatureCAA",
    "RetrievalTracker",
    "Run",
    "RunContext",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingTracker",
    "atomic_write",
    "build_loss_for",
    "build_model_for",
    "config_from_args",
    "embed",
    "fit",
    "image_size_for",
    "image_transform",
    "iterate_batches",
    "load_checkpoint",
    "load_splits",
    "main",
    "make_optimizer",
    "make_schedule",
    "parse_key_value",
    "parser",
    "prepare_output",
    "resolve_device",
    "run",
    "save_checkpoint",
    "set_image_transforms",
    "subsample",
    "train",
    "warm_up_head",
]

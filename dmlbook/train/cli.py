"""``python -m dmlbook train``: the command line of :func:`~dmlbook.train.run.train`.

Errors a user can fix are one line on stderr, without a traceback: ``dmlbook train: error: ...``. A bad flag
value names the flag (``argument --batch-k: ...``). Exit codes: 0 done, 2 a bad setting, dataset or checkpoint
(nothing was trained), 1 the run could not go on (its output folder is in use, a file could not be written, or
training diverged; the last good checkpoint is kept).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import distributed
from ..data import list_datasets
from ..losses import LOSSES
from ..models import available_models
from .config import DEVICES, METRIC_KEYS, OPTIMIZERS, SCHEDULES, ConfigError, TrainConfig
from .files import OutputBusyError
from .loop import TrainingDiverged
from .run import train

DESCRIPTION = (
    "Train an embedding and measure it: one loop for one process or torchrun, checkpoints, metrics.json."
)

#: Exceptions that mean "a setting, dataset or checkpoint is wrong" (exit 2) and "the run could not go on" (1).
USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError)
RUN_ERRORS = (TrainingDiverged, OutputBusyError, OSError)


def parse_key_value(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE a Python literal (``margin=0.2``, ``hidden_dims=(512,)``) or a bare word."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. margin=0.2); got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare word such as prob or batch_hard
    return key.strip(), value


# Repeatable NAME=VALUE options (parsed by parse_key_value) and their help.
KEY_VALUE_FLAGS = (
    ("--loss-arg", "a loss hyper-parameter, e.g. --loss-arg margin=0.2 (repeatable)"),
    ("--model-arg", "a model argument, e.g. --model-arg hidden_dims=(512,)"),
    ("--data-arg", "a dataset-loader argument, e.g. --data-arg key=mobilenet_v2_1.0_224_quant"),
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dmlbook train",
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="dataset folder (default: $DMLBOOK_DATA/<dataset>)")
    p.add_argument("--loss", required=True, help=f"one of: {', '.join(LOSSES)}")
    p.add_argument("--epochs", type=int, default=None, help="most epochs (default: the dataset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--out", default="build/train", help="output folder for metrics.json, history, checkpoint")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--model", default=None, help=f"one of: {', '.join(available_models())}")
    p.add_argument("--embedding-dim", type=int, default=None)
    p.add_argument("--batch-p", type=int, default=None, help="classes per batch")
    p.add_argument("--batch-k", type=int, default=None, help="samples per class in a batch (>= 2)")
    p.add_argument("--batches-per-epoch", type=int, default=None)
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument(
        "--loss-lr-mult",
        type=float,
        default=None,
        help="lr factor for the loss's own parameters (default: the loss's lr_mult, else 1)",
    )
    p.add_argument("--schedule", default="cosine", choices=SCHEDULES)
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience in epochs (0: off)")
    p.add_argument(
        "--val-fraction", type=float, default=None, help="share of train classes used for validation"
    )
    p.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (CUDA)"
    )
    p.add_argument("--num-workers", type=int, default=None)
    for flag, help_text in KEY_VALUE_FLAGS:
        p.add_argument(
            flag, action="append", type=parse_key_value, default=[], metavar="NAME=VALUE", help=help_text
        )
    p.add_argument(
        "--pretrained", default=None, help="ImageNet weights file for image backbones, or 'default'"
    )
    p.add_argument("--image-size", type=int, default=None, help="crop size for image datasets")
    p.add_argument(
        "--backbone-lr-mult", type=float, default=None, help="lr factor for the pretrained backbone"
    )
    p.add_argument(
        "--cache-images",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode every image once into memory (default: the dataset's)",
    )
    p.add_argument(
        "--crop-scale-min",
        type=float,
        default=None,
        help="smallest area share of the random crop (default: the dataset's, else 0.08)",
    )
    p.add_argument(
        "--head-warmup-epochs",
        type=int,
        default=None,
        help="epochs of training the embedding layer on frozen pooled features first (image backbones; "
        "default: the dataset's, else 0)",
    )
    p.add_argument(
        "--head-warmup-lr",
        type=float,
        default=None,
        help="learning rate of the head warm-up (default: the dataset's, else 1e-3)",
    )
    p.add_argument(
        "--caa-on-features",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="osm_caa: CAA classifier on the backbone's pooled features (default: when it has them)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


#: TrainConfig fields whose flag is not ``--`` + the name with dashes.
_FLAGS = {
    "data_args": "--data-arg",
    "loss_args": "--loss-arg",
    "model_args": "--model-arg",
    "progress": "--no-progress",
}


def flag_of(field: str) -> str:
    """The command-line flag of a :class:`TrainConfig` field (``batch_k`` -> ``--batch-k``)."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset,
        loss=args.loss,
        data_root=args.data_root,
        data_args=dict(args.data_arg),
        loss_args=dict(args.loss_arg),
        model=args.model,
        model_args=dict(args.model_arg),
        embedding_dim=args.embedding_dim,
        epochs=args.epochs,
        patience=args.patience,
        batch_p=args.batch_p,
        batch_k=args.batch_k,
        batches_per_epoch=args.batches_per_epoch,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        loss_lr_mult=args.loss_lr_mult,
        schedule=args.schedule,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        out=args.out,
        resume=args.resume,
        num_workers=args.num_workers,
        progress=not args.no_progress,
        pretrained=args.pretrained,
        image_size=args.image_size,
        backbone_lr_mult=args.backbone_lr_mult,
        cache_images=args.cache_images,
        crop_scale_min=args.crop_scale_min,
        head_warmup_epochs=args.head_warmup_epochs,
        head_warmup_lr=args.head_warmup_lr,
        caa_on_features=args.caa_on_features,
    )


def _message(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, ConfigError) and err.field is not None:
        return f"argument {flag_of(err.field)}: {text}"
    return " ".join(text.split()) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from_args(args)
        result = train(config)
    except USAGE_ERRORS as err:
        print(f"dmlbook train: error: {_message(err)}", file=sys.stderr)
        return 2
    except RUN_ERRORS as err:
        print(f"dmlbook train: error: {_message(err)}", file=sys.stderr)
        return 1
    finally:
        distributed.teardown()
    if result.metrics:
        shown = {k: result.metrics[k] for k in (*METRIC_KEYS, "val_recall@1", "epochs", "seconds")}
        print(json.dumps(shown, indent=2))
        if config.out:
            print(f"wrote {Path(config.out) / 'metrics.json'}")
    return 0

"""The dataset registry: names -> metadata, where the data lives, and :func:`load_dataset`.

Where data is looked for: an explicit ``root`` (the dataset folder itself), else each candidate folder name
of the dataset under the data home (``$DMLBOOK_DATA``, or ``./data`` when it is unset), then system folders
(e.g. Debian's ``/usr/share/datasets/fashion-mnist``). Nothing is ever downloaded here; missing data raises
:class:`~dmlbook.data.errors.DatasetNotFoundError` naming the folder, the missing file and how to get it.
"""

from __future__ import annotations

import gzip
import inspect
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._checks import check_choice
from . import cars196, cub200, digits, fashion_mnist, features, folder, fsdd, omniglot, skin, sop, synthetic
from .dataset import DMLDataset, ImageDataset
from .errors import DatasetNotFoundError, not_found
from .info import DatasetInfo
from .splits import SPLITS, SplitSource, apply_split
from .transforms import eval_transform, train_transform


@dataclass(frozen=True)
class _Entry:
    info: DatasetInfo
    load: Callable[..., SplitSource]
    check: Callable[..., str | None] | None = None


_REGISTRY: dict[str, _Entry] = {
    "synthetic": _Entry(synthetic.INFO, synthetic.load),
    "digits": _Entry(digits.INFO, digits.load),
    "fashion_mnist": _Entry(fashion_mnist.INFO, fashion_mnist.load, fashion_mnist.check),
    "cars196": _Entry(cars196.INFO, cars196.load, cars196.check),
    "cars196_features": _Entry(features.CARS_INFO, features.load_cars, features.check),
    "cub200": _Entry(cub200.INFO, cub200.load, cub200.check),
    "sop": _Entry(sop.INFO, sop.load, sop.check),
    "folder": _Entry(folder.INFO, folder.load, folder.check),
    "features": _Entry(features.INFO, features.load, features.check),
    "ucmerced_features": _Entry(features.UCMERCED_INFO, features.load_ucmerced, features.check),
    "fsdd": _Entry(fsdd.INFO, fsdd.load, fsdd.check),
    "isic2016": _Entry(skin.ISIC_INFO, skin.load_isic2016, skin.isic_check),
    "ph2": _Entry(skin.PH2_INFO, skin.load_ph2, skin.ph2_check),
    "omniglot": _Entry(omniglot.INFO, omniglot.load, omniglot.check),
    "omniglot_embedded": _Entry(omniglot.EMBEDDED_INFO, omniglot.load_embedded),
}


def list_datasets() -> list[str]:
    """The registered dataset names."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in _REGISTRY:
        check_choice(name, _REGISTRY, "name")  # raises, listing the valid names
    return _REGISTRY[key]


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a registered dataset (ValueError listing valid names if unknown)."""
    return _entry(name).info


def data_home() -> Path:
    """``$DMLBOOK_DATA`` if set, else ``./data`` (relative to the current directory)."""
    env = os.environ.get("DMLBOOK_DATA", "").strip()
    return Path(env).expanduser() if env else Path.cwd() / "data"


def candidate_dirs(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for ``name``, in order (just ``root`` when it is given)."""
    info = dataset_info(name)
    if root is not None:
        return [Path(root).expanduser()]
    home = data_home()
    return [home / f for f in info.folders] + [Path(d) for d in info.system_dirs]


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with only the keyword arguments it accepts."""
    params = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in kwargs.items() if k in params})


def find_root(name: str, root: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """The folder that holds dataset ``name``; raises DatasetNotFoundError when none is complete."""
    entry = _entry(name)
    info = entry.info
    candidates = candidate_dirs(info.name, root)
    if not candidates:
        raise DatasetNotFoundError(
            f"dataset {info.name!r} has no default folder: pass root=...\n{info.how_to_get()}",
            dataset=info.name,
            missing="root",
        )
    problems = [(d, _call(entry.check, d, **kwargs)) for d in candidates]
    for d, missing in problems:
        if d.exists() and missing is None:
            return d
    folder_, missing = next(((d, m) for d, m in problems if d.exists()), problems[0])
    raise not_found(info.name, folder_, missing, where=info.how_to_get(), looked=candidates)


def dataset_status(name: str, root: str | os.PathLike | None = None) -> tuple[bool, Path | None, str]:
    """``(present, folder, note)`` for ``data list``: generated/package data is always present."""
    info = dataset_info(name)
    if not info.needs_folder:
        return True, None, "generated" if info.source == "generated" else "ships with a Python package"
    try:
        return True, find_root(name, root), "ok"
    except DatasetNotFoundError as err:
        return False, err.folder, f"missing {err.missing}"


_LOAD_DATASET_ARGS = ("root", "split", "val_fraction", "seed", "transform")


def _check_loader_arguments(name: str, load: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments that the dataset's loader does not take, listing those it does."""
    params = inspect.signature(load).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in list(params.items())[1:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = ", ".join(repr(k) for k in sorted(set(kwargs) - set(accepted)))
    if unknown:
        own = f"its loader accepts: {', '.join(accepted)}" if accepted else "its loader takes no arguments"
        raise TypeError(
            f"dataset {name!r} does not take {unknown}; {own} (besides load_dataset's "
            f"{', '.join(_LOAD_DATASET_ARGS)})"
        )


def _damaged(name: str, folder: Path | None, err: BaseException) -> Exception:
    """The error for a compressed file that fails to decompress while loading: the damaged files by name (from
    :func:`~dmlbook.data.download.verify_files`) and how to replace them."""
    from .download import DamagedFileError, verify_files  # download imports this module

    where = f" --root {folder}" if folder is not None else ""
    fix = f"replace it: python -m dmlbook data download {name} --force{where} (or copy it again)"
    try:
        bad = [s for s in verify_files(name, folder) if not s.ok] if folder is not None else []
    except Exception:  # noqa: BLE001  (the original error below still says what happened)
        bad = []
    if bad:
        damaged = "; ".join(f"{s.path} is {s.note}" for s in bad)
        return DamagedFileError(f"dataset {name!r}: {damaged}; {fix}", path=bad[0].path)
    return DamagedFileError(
        f"dataset {name!r}: a compressed file in {folder} is damaged ({type(err).__name__}: {err}); {fix}"
    )


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    transform: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> DMLDataset:
    """Load a registered dataset's ``split`` as a :class:`DMLDataset`.

    Args:
        name: one of :func:`list_datasets` (``synthetic``, ``digits``, ``fashion_mnist``, ``cars196``,
            ``cars196_features``, ``cub200``, ``sop``, ``folder``, ``features``).
        root: the dataset folder (or ``.npz`` file for features); default: see :func:`candidate_dirs`.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``. Train and test are the standard class-disjoint
            split; ``"val"`` is ``val_fraction`` of the training classes (seeded by ``seed``), removed from
            ``"train"``; ``val_fraction=0`` keeps every training class in ``"train"``. Labels of train/val/test
            are renumbered ``0 .. C-1``; ``"all"`` keeps the full label space.
        transform: applied to each ``x``. For image datasets the default is
            :func:`~dmlbook.data.transforms.train_transform` for ``"train"`` and
            :func:`~dmlbook.data.transforms.eval_transform` otherwise (ImageNet normalisation, 224 px).
        **kwargs: passed to the dataset's loader (e.g. ``key=`` for features, ``protocol=`` for Fashion-MNIST,
            ``kind=``/``n_classes=``/``spread=`` for synthetic, ``train_classes=`` for folder/features).
    """
    entry = _entry(name)
    info = entry.info
    check_choice(split, SPLITS, "split")
    _check_loader_arguments(info.name, entry.load, kwargs)
    if "seed" in inspect.signature(entry.load).parameters:
        kwargs.setdefault("seed", seed)
    folder_ = find_root(info.name, root, **kwargs) if info.needs_folder else None
    try:
        source = entry.load(folder_, **kwargs)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:  # a damaged compressed file: say which one
        raise _damaged(info.name, folder_, err) from err
    ds = apply_split(source, split, val_fraction=val_fraction, seed=seed)
    if transform is None and isinstance(ds, ImageDataset):
        size = info.image_size or 224
        transform = train_transform(size) if split == "train" else eval_transform(size)
    if transform is not None:
        ds.transform = transform
    return ds

"""Stanford Cars-196 (Krause, Stark, Deng, Fei-Fei, "3D Object Representations for Fine-Grained
Categorization", 3dRR workshop at ICCV 2013): 16,185 images of 196 car models. Non-commercial research use.

Metric learning uses classes 1-98 for training and 99-196 for testing (Oh Song et al., CVPR 2016).
Three folder layouts are read, tried in this order:

1. ``labels.csv`` + ``images/`` (columns ``fname, class_id, class_name, bbox_x1..bbox_y2``), as in
   ``$DMLBOOK_DATA/cars196_half`` (the official train half, resized).
2. ``cars_annos.mat`` + ``car_ims/``: the all-in-one annotation file (fields ``relative_im_path``, ``class``,
   ``test``, ``bbox_*``; top-level ``class_names``) that DML papers used.
3. The official devkit: ``devkit/cars_train_annos.mat`` (struct ``annotations`` with fields ``bbox_x1``,
   ``bbox_y1``, ``bbox_x2``, ``bbox_y2``, ``class``, ``fname``) + ``cars_train/``, and, when present,
   ``cars_test_annos_withlabels.mat`` (in ``devkit/`` or the root) + ``cars_test/``; ``devkit/cars_meta.mat``
   gives the class names. Without the labelled test annotations only the train half (8,144 images) is loaded.

The Stanford page is gone, so the data must be obtained by hand (see ``INFO.manual``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_flag
from ._tables import as_int, load_mat_strings, load_mat_struct, read_csv
from .dataset import ImageDataset
from .info import DatasetInfo
from .splits import SplitSource, class_mask

TRAIN_CLASSES = np.arange(1, 99)
_BBOX = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")

INFO = DatasetInfo(
    name="cars196",
    title="Stanford Cars-196",
    input_kind="image",
    input_shape=(3, 224, 224),
    num_classes=196,
    split="classes 1-98 train, 99-196 test",
    embedding_dim=128,
    batch_p=32,
    batch_k=4,
    source="manual",
    image_size=224,
    url="https://ai.stanford.edu/~jkrause/cars/car_dataset.html (offline; archived copies on the Wayback Machine)",
    license="non-commercial research use only (ImageNet-style terms)",
    citation="J. Krause, M. Stark, J. Deng, L. Fei-Fei. 3D Object Representations for Fine-Grained "
    "Categorization. 4th IEEE Workshop on 3D Representation and Recognition (3dRR-13), ICCV 2013.",
    folders=("cars196", "cars196_half", "stanford_cars", "stanford_cars/stanford_cars"),
    manual="Manual step: Stanford's download page is offline, so no automatic download (checksums unknown). "
    "Obtain the official archives (cars_train.tgz, cars_test.tgz, car_devkit.tgz and "
    "cars_test_annos_withlabels.mat, e.g. from a Wayback Machine snapshot of the official page), unpack them "
    "into one folder (cars_train/, cars_test/, devkit/) and pass root= or put it at $DMLBOOK_DATA/cars196.",
)


def _layout(folder: Path) -> str | None:
    if (folder / "labels.csv").is_file():
        return "csv"
    if (folder / "cars_annos.mat").is_file():
        return "annos"
    if (folder / "devkit" / "cars_train_annos.mat").is_file():
        return "devkit"
    return None


def _test_annos(folder: Path) -> Path | None:
    for p in (
        folder / "devkit" / "cars_test_annos_withlabels.mat",
        folder / "cars_test_annos_withlabels.mat",
    ):
        if p.is_file():
            return p
    return None


def check(folder: Path) -> str | None:
    """The first missing file or folder (None when the folder holds a readable layout)."""
    layout = _layout(folder)
    if layout is None:
        return "labels.csv (or devkit/cars_train_annos.mat, or cars_annos.mat)"
    needed = {"csv": ["images"], "annos": ["car_ims"], "devkit": ["cars_train"]}[layout]
    if layout == "devkit" and _test_annos(folder) is not None:
        needed.append("cars_test")
    return next((f"{d}/" for d in needed if not (folder / d).is_dir()), None)


def _meta_names(folder: Path) -> dict[int, str]:
    meta = folder / "devkit" / "cars_meta.mat"
    return dict(enumerate(load_mat_strings(meta, "class_names"), start=1)) if meta.is_file() else {}


def read_annotations(folder: str | Path) -> dict[str, Any]:
    """``{"path", "class_id" (1-196), "bbox" (N, 4), "part" ("train"/"test" half of the official split),
    "class_names" ({class_id: name}, empty when unknown)}``."""
    folder = Path(folder)
    layout = _layout(folder)
    if layout == "csv":
        t = read_csv(folder / "labels.csv")
        ids = as_int(t["class_id"])
        names = (
            dict(zip(ids.tolist(), t["class_name"].tolist())) if "class_name" in t else _meta_names(folder)
        )
        return {
            "path": np.asarray([str(folder / "images" / f) for f in t["fname"]]),
            "class_id": ids,
            "bbox": np.stack([as_int(t[k]) for k in _BBOX], 1),
            "part": np.full(len(ids), "train"),
            "class_names": names,
        }
    if layout == "annos":
        a = load_mat_struct(folder / "cars_annos.mat", "annotations")
        names = load_mat_strings(folder / "cars_annos.mat", "class_names")
        return {
            "path": np.asarray([str(folder / str(p)) for p in a["relative_im_path"]]),
            "class_id": as_int(a["class"]),
            "bbox": np.stack([as_int(a[k]) for k in _BBOX], 1),
            "part": np.where(as_int(a["test"]) == 1, "test", "train"),
            "class_names": dict(enumerate(names, start=1)),
        }
    parts = [("train", folder / "devkit" / "cars_train_annos.mat", folder / "cars_train")]
    if (test := _test_annos(folder)) is not None:
        parts.append(("test", test, folder / "cars_test"))
    cols: dict[str, list] = {"path": [], "class_id": [], "bbox": [], "part": []}
    for part, mat, images in parts:
        a = load_mat_struct(mat, "annotations")
        cols["path"].append([str(images / str(f)) for f in a["fname"]])
        cols["class_id"].append(as_int(a["class"]))
        cols["bbox"].append(np.stack([as_int(a[k]) for k in _BBOX], 1))
        cols["part"].append(np.full(len(a["fname"]), part))
    return {**{k: np.concatenate(v) for k, v in cols.items()}, "class_names": _meta_names(folder)}


def load(folder: Path, *, transform: object = None, check_files: bool = True) -> SplitSource:
    """All images found (lazily decoded), classes 1-98 on the train side. ``meta``: ``bbox`` (in the
    coordinates of the original images) and ``part`` (official train/test half). The image headers are checked
    now (about 0.5 s for 8,144 JPEGs) unless ``check_files=False``."""
    a = read_annotations(folder)
    ids = np.unique(a["class_id"])
    names = a["class_names"]
    ds = ImageDataset(
        a["path"],
        np.searchsorted(ids, a["class_id"]),
        class_ids=ids,
        class_names=[str(names[i]) for i in ids] if all(i in names for i in ids) else None,
        transform=transform,
        meta={"bbox": a["bbox"], "part": a["part"]},
        name="cars196",
        info=INFO,
    )
    if check_flag(check_files, "check_files"):
        ds.check_files()
    return SplitSource(ds, class_mask(ds.labels, ds.class_ids, TRAIN_CLASSES))

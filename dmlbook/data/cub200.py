"""CUB-200-2011 (Wah, Branson, Welinder, Perona, Belongie, "The Caltech-UCSD Birds-200-2011 Dataset",
Caltech CNS-TR-2011-001): 11,788 images of 200 bird species.

Layout (the official archive ``CUB_200_2011.tgz``, unpacked): ``images.txt`` (``<image_id> <path>``),
``image_class_labels.txt`` (``<image_id> <class_id>``), ``classes.txt`` (``<class_id> <name>``, optional),
``bounding_boxes.txt`` (``<image_id> <x> <y> <width> <height>``, optional) and ``images/<path>``.
Metric learning uses classes 1-100 for training and 101-200 for testing (Oh Song et al., CVPR 2016).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._checks import check_flag
from ._tables import as_int, read_rows
from .dataset import ImageDataset
from .info import DatasetInfo, RemoteFile
from .splits import SplitSource, class_mask

TRAIN_CLASSES = np.arange(1, 101)
REQUIRED = ("images.txt", "image_class_labels.txt", "images/")

INFO = DatasetInfo(
    name="cub200",
    title="Caltech-UCSD Birds-200-2011",
    input_kind="image",
    input_shape=(3, 224, 224),
    num_classes=200,
    split="classes 1-100 train, 101-200 test",
    embedding_dim=128,
    batch_p=32,
    batch_k=4,
    source="download",
    image_size=224,
    url="https://www.vision.caltech.edu/datasets/cub_200_2011/ (archive: https://data.caltech.edu/records/65de6-vp158)",
    license="research and non-commercial use (images from Flickr; see the dataset page)",
    citation="C. Wah, S. Branson, P. Welinder, P. Perona, S. Belongie. The Caltech-UCSD Birds-200-2011 Dataset. "
    "Technical Report CNS-TR-2011-001, California Institute of Technology, 2011.",
    folders=("cub200", "CUB_200_2011", "cub200/CUB_200_2011"),
    files=(
        RemoteFile(
            "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
            "CUB_200_2011.tgz",
            sha256="0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
            md5="97eceeb196236b17998738112f37df78",
            size=1_150_585_339,
            extract=True,
            strip="CUB_200_2011",
        ),
    ),
)


def check(folder: Path) -> str | None:
    """The first missing required file or folder, or None."""
    return next((name for name in REQUIRED if not (folder / name.rstrip("/")).exists()), None)


def load(folder: Path, *, transform: object = None, check_files: bool = True) -> SplitSource:
    """All 11,788 images (lazily decoded); classes 1-100 on the train side. ``meta["bbox"]``: x, y, w, h. The
    image headers are checked now unless ``check_files=False``."""
    paths = dict(read_rows(folder / "images.txt"))
    image_ids = list(paths)
    class_of = {i: int(c) for i, c in read_rows(folder / "image_class_labels.txt")}
    missing = [i for i in image_ids if i not in class_of]
    if missing:
        raise ValueError(f"{folder}/image_class_labels.txt has no class for image ids {missing[:5]}")
    raw = np.asarray([class_of[i] for i in image_ids], dtype=np.int64)
    ids = np.unique(raw)
    names = None
    if (folder / "classes.txt").is_file():
        table = {int(r[0]): " ".join(r[1:]) for r in read_rows(folder / "classes.txt")}
        names = [table[i] for i in ids] if all(i in table for i in ids) else None
    meta = {"image_id": as_int(image_ids)}
    if (folder / "bounding_boxes.txt").is_file():
        boxes = {r[0]: [float(v) for v in r[1:5]] for r in read_rows(folder / "bounding_boxes.txt")}
        if all(i in boxes for i in image_ids):
            meta["bbox"] = np.asarray([boxes[i] for i in image_ids], dtype=np.float32)
    ds = ImageDataset(
        [folder / "images" / paths[i] for i in image_ids],
        np.searchsorted(ids, raw),
        class_ids=ids,
        class_names=names,
        transform=transform,
        meta=meta,
        name="cub200",
        info=INFO,
    )
    if check_flag(check_files, "check_files"):
        ds.check_files()
    return SplitSource(ds, class_mask(ds.labels, ds.class_ids, TRAIN_CLASSES))

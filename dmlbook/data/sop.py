"""Stanford Online Products (Oh Song, Xiang, Jegelka, Savarese, "Deep Metric Learning via Lifted Structured
Feature Embedding", CVPR 2016): 120,053 images of 22,634 products (classes) from 12 super-categories.

Layout (the official ``Stanford_Online_Products.zip``, unpacked): ``Ebay_train.txt`` and ``Ebay_test.txt``
(header ``image_id class_id super_class_id path``, paths relative to the folder, e.g.
``bicycle_final/111085122871_0.JPG``) and the 12 ``<category>_final/`` image folders. The split is the files':
classes 1-11,318 train (59,551 images), 11,319-22,634 test (60,502 images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._checks import check_flag
from ._tables import as_int, read_rows
from .dataset import ImageDataset
from .info import DatasetInfo
from .splits import SplitSource

FILES = ("Ebay_train.txt", "Ebay_test.txt")

INFO = DatasetInfo(
    name="sop",
    title="Stanford Online Products",
    input_kind="image",
    input_shape=(3, 224, 224),
    num_classes=22634,
    split="Ebay_train.txt / Ebay_test.txt",
    embedding_dim=128,
    batch_p=64,
    batch_k=2,
    source="manual",
    image_size=224,
    url="https://cvgl.stanford.edu/projects/lifted_struct/",
    license="research use (images from eBay; see the project page)",
    citation="H. Oh Song, Y. Xiang, S. Jegelka, S. Savarese. Deep Metric Learning via Lifted Structured Feature "
    "Embedding. CVPR 2016.",
    folders=("sop", "Stanford_Online_Products", "sop/Stanford_Online_Products"),
    manual="Manual step: the official archive Stanford_Online_Products.zip (about 2.9 GB, checksum unknown) is "
    "linked from the project page (its FTP server may be offline; use an archived copy). Unzip it so that "
    "Ebay_train.txt sits at the top of the dataset folder.",
)


def check(folder: Path) -> str | None:
    """The first missing list file, or the first missing image folder (``<category>_final/``)."""
    for name in FILES:
        if not (folder / name).is_file():
            return name
    dirs = sorted(
        {str(Path(r[3]).parent) for name in FILES for r in read_rows(folder / name, skip_header=True)}
    )
    return next((f"{d}/" for d in dirs if not (folder / d).is_dir()), None)


def load(folder: Path, *, transform: object = None, check_files: bool = True) -> SplitSource:
    """All images listed in both files (lazily decoded); the train side is ``Ebay_train.txt``.
    ``meta``: ``super_class_id``, ``image_id``. The image headers are checked now (120,053 files: several
    seconds) unless ``check_files=False``."""
    rows = [(r, part) for part, name in enumerate(FILES) for r in read_rows(folder / name, skip_header=True)]
    raw = as_int([r[1] for r, _ in rows])
    ids = np.unique(raw)
    meta = {"super_class_id": as_int([r[2] for r, _ in rows]), "image_id": as_int([r[0] for r, _ in rows])}
    ds = ImageDataset(
        [folder / r[3] for r, _ in rows],
        np.searchsorted(ids, raw),
        class_ids=ids,
        transform=transform,
        meta=meta,
        name="sop",
        info=INFO,
    )
    if check_flag(check_files, "check_files"):
        ds.check_files()
    return SplitSource(ds, np.asarray([part == 0 for _, part in rows]))

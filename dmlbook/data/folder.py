"""Folder-per-class image datasets: ``<root>/images/<class>/*``, ``<root>/Images/<class>/*`` or
``<root>/<class>/*``. Classes are the sub-folder names in sorted order (label = position).

The registered default is UC Merced Land Use (Yang & Newsam, "Bag-of-Visual-Words and Spatial Extensions for
Land-Use Classification", ACM SIGSPATIAL GIS 2010), found as ``$DMLBOOK_DATA/ucmerced16`` (a 16-class subset,
``images/<class>/*.jpg``) or ``$DMLBOOK_DATA/UCMerced_LandUse`` (the official zip: ``Images/<class>/*.tif``).
Pass ``root=`` for any other folder-per-class dataset. The class-disjoint split puts the first half of the
sorted classes on the train side (``train_classes`` overrides: a count or a list of class names), so a folder
needs at least two classes. Every image's header is checked when the dataset is built
(:func:`~dmlbook.data.dataset.check_image_files`), so that a damaged file is named before training starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dataset import ImageDataset, check_image_files
from .info import DatasetInfo, RemoteFile
from .splits import SplitSource, first_classes

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}

INFO = DatasetInfo(
    name="folder",
    title="Folder-per-class images (default: UC Merced Land Use)",
    input_kind="image",
    input_shape=(3, 224, 224),
    num_classes=None,
    split="first half of the sorted classes train, rest test",
    embedding_dim=64,
    batch_p=4,
    batch_k=8,
    source="download",
    image_size=224,
    url="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
    license="UC Merced: public-domain USGS imagery, 'meant for research purposes' (cite Yang & Newsam 2010)",
    citation="Y. Yang, S. Newsam. Bag-of-Visual-Words and Spatial Extensions for Land-Use Classification. "
    "ACM SIGSPATIAL GIS 2010.",
    folders=("ucmerced16", "UCMerced_LandUse", "ucmerced"),
    files=(
        RemoteFile(
            "http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip",
            "UCMerced_LandUse.zip",
            extract=True,
            strip="UCMerced_LandUse",
        ),
    ),
)


def class_dir(folder: Path) -> Path:
    """The folder that holds one sub-folder per class."""
    for sub in ("images", "Images"):
        if (folder / sub).is_dir():
            return folder / sub
    return folder


def scan(folder: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` for every non-hidden sub-folder that holds images."""
    base, out = class_dir(folder), {}
    if not base.is_dir():
        return out
    for d in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS and not f.name.startswith(".")
        )
        if files:
            out[d.name] = files
    return out


def check(folder: Path) -> str | None:
    """``"<class>/<image>"`` when no class sub-folder with images exists, else None."""
    if not folder.is_dir():
        return "images/"
    return None if scan(folder) else "images/<class>/<image> (sub-folders of images)"


def load(
    folder: Path,
    *,
    transform: object = None,
    train_classes: int | Sequence[str] | None = None,
    check_files: bool = True,
) -> SplitSource:
    """Every image of every class folder, decoded lazily; the headers are checked now unless
    ``check_files=False``."""
    classes = scan(folder)
    names = list(classes)
    if len(names) < 2:
        found = f"{len(names)} class folder{'s' * (len(names) != 1)} with images"
        found += f" ({names[0]!r})" if names else ""
        raise ValueError(
            f"folder dataset {class_dir(folder)}: found {found}; a class-disjoint train/test "
            "split needs at least 2 (one sub-folder of images per class)"
        )
    paths = [p for files in classes.values() for p in files]
    if check_files:
        check_image_files(paths, name=f"folder dataset {class_dir(folder)}")
    labels = np.repeat(np.arange(len(names)), [len(f) for f in classes.values()])
    ds = ImageDataset(
        paths,
        labels,
        class_ids=np.arange(len(names)),
        class_names=names,
        transform=transform,
        name=f"folder:{folder.name}",
        info=INFO,
    )
    if train_classes is not None and not isinstance(train_classes, int):
        unknown = sorted(set(train_classes) - set(names))
        if unknown:
            raise ValueError(f"train_classes names unknown classes {unknown[:5]}; classes are {names}")
        train_classes = [names.index(c) for c in train_classes]
    return SplitSource(ds, first_classes(ds, train_classes))

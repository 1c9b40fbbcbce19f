"""Dermoscopy: ISIC 2016 (benign vs malignant) and PH2 (three classes, expert lesion masks).

* **ISIC 2016**, Part 3 "lesion classification" (Gutman et al., "Skin Lesion Analysis toward Melanoma Detection:
  A Challenge at ISBI 2016", arXiv:1605.01397): 900 training and 379 test dermoscopy images, benign (0) or
  malignant (1). Two layouts are read, tried in this order:

  1. ``labels.csv`` (columns ``image, label[, class_name]``) + ``images/<image>.jpg``, as in
     ``$DMLBOOK_DATA/isic2016`` (860 of the 900 training images, shorter side 256 px);
  2. the official files: ``ISBI2016_ISIC_Part3_Training_GroundTruth.csv`` (no header, ``ISIC_xxxxxxx,benign``
     or ``,malignant``) + ``ISBI2016_ISIC_Part3_Training_Data/ISIC_xxxxxxx.jpg`` (or ``images/``), and when
     present ``ISBI2016_ISIC_Part3_Test_GroundTruth.csv`` (``ISIC_xxxxxxx,0.0`` or ``,1.0``) +
     ``ISBI2016_ISIC_Part3_Test_Data/``.

  Split (``load(..., test_fraction=0.3, seed=0)``): the official training / test parts when the test part is
  there, otherwise a seeded *stratified* image split of the training part (both classes on both sides: this is
  classification, not the class-disjoint metric-learning protocol).

* **PH2** (Mendonça, Ferreira, Marques, Marçal, Rozeira, "PH² - A dermoscopic image database for research and
  benchmarking", EMBC 2013): 200 images, 80 common nevi (0), 80 atypical nevi (1), 40 melanomas (2), each with the
  experts' lesion segmentation. Layouts:

  1. ``labels.csv`` (``image, label[, class_name, ...]``) + ``images/<image>.jpg`` +
     ``masks/<image>_lesion.png`` (``$DMLBOOK_DATA/ph2``);
  2. the official distribution: ``PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp`` and
     ``.../IMDxxx_lesion/IMDxxx_lesion.bmp``, labels from the "Clinical Diagnosis" column of ``PH2_dataset.txt``
     (its ``||``-separated original form, or a tab-separated copy); the folder may also be the one that
     contains ``PH2Dataset/``.

  ``meta["mask"]`` holds each image's mask file; :func:`load_mask` reads one, :func:`lesion_tensors` decodes
  images and masks together at one size. Split: a seeded stratified image split (``test_fraction``); the
  DeMAL-CNN chapter uses ``split="all"`` as a test of generalisation from ISIC.

* :class:`RandomDihedral`: flips and 90° turns (a dermoscopy image has no "up"). Generated dermoscopy-like images
  with exact lesion masks, for teaching offline, come from :func:`dmlbook.data.synthetic_lesions.make_lesions`
  (re-exported here).

Images are decoded with PIL (``pip install dmlbook[train]``).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._checks import check_flag, check_fraction, check_size
from ._optional import require
from ._tables import read_csv
from .dataset import DMLDataset, ImageDataset
from .errors import not_found
from .info import DatasetInfo
from .splits import SplitSource, stratified_mask

# the generated lesions live in their own module; make_lesions stays importable from here
from .synthetic_lesions import make_lesions

ISIC_CLASSES = ("benign", "malignant")
PH2_CLASSES = ("common_nevus", "atypical_nevus", "melanoma")
ISIC_TRAIN_CSV = "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
ISIC_TRAIN_DIR = "ISBI2016_ISIC_Part3_Training_Data"
ISIC_TEST_CSV = "ISBI2016_ISIC_Part3_Test_GroundTruth.csv"
ISIC_TEST_DIR = "ISBI2016_ISIC_Part3_Test_Data"
PH2_IMAGES_DIR = "PH2 Dataset images"
PH2_TXT = "PH2_dataset.txt"
_ISIC_BASE = "https://isic-challenge-data.s3.amazonaws.com/2016/"

ISIC_INFO = DatasetInfo(
    name="isic2016",
    title="ISIC 2016 challenge, Part 3: benign vs malignant dermoscopy images",
    input_kind="image",
    input_shape=(3, 224, 224),
    num_classes=2,
    split="official training / test parts when both are present, else a seeded stratified image split of the "
    "training part (test_fraction=0.3)",
    embedding_dim=64,
    batch_p=2,
    batch_k=32,
    source="manual",
    image_size=224,
    url="https://challenge.isic-archive.com/data/#2016",
    license="ISIC 2016 challenge data: CC-0 per the ISIC challenge pages (ISIC Archive images are individually "
    "CC-0 or CC-BY-NC)",
    citation="D. Gutman, N. C. F. Codella, E. Celebi, B. Helba, M. Marchetti, N. Mishra, A. Halpern. Skin Lesion "
    "Analysis toward Melanoma Detection: A Challenge at the International Symposium on Biomedical Imaging "
    "(ISBI) 2016, hosted by the International Skin Imaging Collaboration (ISIC). arXiv:1605.01397, 2016.",
    folders=("isic2016", "ISIC2016", "isic_2016", "ISIC-2016"),
    manual="Manual step (two archives and two CSVs, no published checksums): download "
    f"{_ISIC_BASE}{ISIC_TRAIN_DIR}.zip and {_ISIC_BASE}{ISIC_TRAIN_CSV} (and, for the official test part, "
    f"{_ISIC_BASE}{ISIC_TEST_DIR}.zip and {_ISIC_BASE}{ISIC_TEST_CSV}), unzip the archives next to the CSVs "
    "so that the folder holds ISBI2016_ISIC_Part3_Training_Data/ISIC_xxxxxxx.jpg, and pass root= or put "
    "the folder at $DMLBOOK_DATA/isic2016.",
)

PH2_INFO = DatasetInfo(
    name="ph2",
    title="PH2 dermoscopy images with expert lesion masks (3 classes)",
    input_kind="image",
    input_shape=(3, 224, 224),
    num_classes=3,
    split="seeded stratified image split (test_fraction=0.3); split='all' for a whole-set test",
    embedding_dim=64,
    batch_p=3,
    batch_k=16,
    source="manual",
    image_size=224,
    url="https://www.fc.up.pt/addi/ph2%20database.html",
    license="research use, cite Mendonça et al. 2013 (ADDI project, Hospital Pedro Hispano)",
    citation="T. Mendonça, P. M. Ferreira, J. S. Marques, A. R. S. Marçal, J. Rozeira. PH2 - A dermoscopic image "
    "database for research and benchmarking. 35th Annual International Conference of the IEEE EMBC, "
    "2013, pp. 5437-5440.",
    folders=("ph2", "PH2", "PH2Dataset", "PH2 Dataset"),
    manual="Manual step: request / download PH2Dataset from the ADDI project page, unpack it (a .rar) and pass "
    "root= or put the folder that holds 'PH2 Dataset images/' and PH2_dataset.txt at $DMLBOOK_DATA/ph2.",
)


def _image_dataset(
    a: dict[str, np.ndarray],
    info: DatasetInfo,
    class_names: Sequence[str],
    *,
    meta: Sequence[str],
    transform: object,
    check_files: bool,
) -> ImageDataset:
    """The images of a ``read_*`` table ``a`` (lazily decoded; labels 0 .. len(class_names) - 1, ``meta``: those
    columns of ``a``); their headers are checked now unless ``check_files=False``."""
    ds = ImageDataset(
        a["path"],
        a["label"],
        class_ids=np.arange(len(class_names)),
        class_names=list(class_names),
        transform=transform,
        meta={key: a[key] for key in meta},
        name=info.name,
        info=info,
    )
    if check_flag(check_files, "check_files"):
        ds.check_files()
    return ds


# --------------------------------------------------------------------------------------------------- ISIC 2016
def _isic_images_dir(folder: Path, official: str) -> Path | None:
    return next((folder / d for d in (official, "images") if (folder / d).is_dir()), None)


def _isic_layout(folder: Path) -> str | None:
    if (folder / "labels.csv").is_file():
        return "csv"
    if (folder / ISIC_TRAIN_CSV).is_file():
        return "official"
    return None


def isic_check(folder: Path) -> str | None:
    """The first missing file or folder (None when ``folder`` holds a readable ISIC 2016 layout)."""
    layout = _isic_layout(folder)
    if layout is None:
        return f"labels.csv (or {ISIC_TRAIN_CSV})"
    if layout == "csv":
        return None if (folder / "images").is_dir() else "images/"
    if _isic_images_dir(folder, ISIC_TRAIN_DIR) is None:
        return f"{ISIC_TRAIN_DIR}/"
    if (folder / ISIC_TEST_CSV).is_file() and _isic_images_dir(folder, ISIC_TEST_DIR) is None:
        return f"{ISIC_TEST_DIR}/"
    return None


def _isic_label(value: str, where: str) -> int:
    text = value.strip().lower()
    if text in ISIC_CLASSES:
        return ISIC_CLASSES.index(text)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number in (0.0, 1.0):
        return int(number)
    raise ValueError(f"{where}: label {value!r} is neither benign/malignant nor 0/1")


def _read_ground_truth(path: Path) -> tuple[list[str], list[int]]:
    """The official header-less ``name,label`` CSV."""
    names, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise ValueError(f"{path}: expected rows 'ISIC_xxxxxxx,label'; got {row!r}")
            names.append(row[0].strip())
            labels.append(_isic_label(row[1], str(path)))
    if not names:
        raise ValueError(f"{path} has no rows")
    return names, labels


def _existing(folder: Path, paths: Sequence[Path], dataset: str, where: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        rel = missing[0].relative_to(folder) if missing[0].is_relative_to(folder) else missing[0]
        raise not_found(
            dataset,
            folder,
            str(rel),
            where=f"{len(missing)} of {len(paths)} image files listed are "
            f"missing (the first is shown).\n{where}",
        )


def read_isic2016(folder: str | Path) -> dict[str, np.ndarray]:
    """``{"image_id", "path", "label" (0 benign / 1 malignant), "part" ("train" / "test")}``, one entry per image.

    Raises :class:`~dmlbook.data.DatasetNotFoundError` naming the folder and the missing file.
    """
    folder = Path(folder)
    missing = isic_check(folder)
    if missing is not None:
        raise not_found(ISIC_INFO.name, folder, missing, where=ISIC_INFO.how_to_get())
    if _isic_layout(folder) == "csv":
        t = read_csv(folder / "labels.csv")
        if "image" not in t or "label" not in t:
            raise ValueError(
                f"{folder / 'labels.csv'} needs the columns 'image' and 'label'; has {sorted(t)}"
            )
        names = [str(n) for n in t["image"]]
        labels = [_isic_label(v, str(folder / "labels.csv")) for v in t["label"]]
        paths = [folder / "images" / (n if Path(n).suffix else f"{n}.jpg") for n in names]
        parts = ["train"] * len(names)
    else:
        names, labels = _read_ground_truth(folder / ISIC_TRAIN_CSV)
        base = _isic_images_dir(folder, ISIC_TRAIN_DIR)
        paths = [base / f"{n}.jpg" for n in names]
        parts = ["train"] * len(names)
        if (folder / ISIC_TEST_CSV).is_file():
            test_names, test_labels = _read_ground_truth(folder / ISIC_TEST_CSV)
            test_base = _isic_images_dir(folder, ISIC_TEST_DIR)
            names, labels = names + test_names, labels + test_labels
            paths += [test_base / f"{n}.jpg" for n in test_names]
            parts += ["test"] * len(test_names)
    _existing(folder, paths, ISIC_INFO.name, ISIC_INFO.how_to_get())
    return {
        "image_id": np.asarray(names),
        "path": np.asarray([str(p) for p in paths]),
        "label": np.asarray(labels, dtype=np.int64),
        "part": np.asarray(parts),
    }


def load_isic2016(
    folder: Path,
    *,
    test_fraction: float = 0.3,
    seed: int = 0,
    transform: object = None,
    check_files: bool = True,
) -> SplitSource:
    """Every image (lazily decoded), benign = 0 / malignant = 1; ``meta``: ``image_id``, ``part``. The train side
    is the official training part when the test part is present, else a stratified ``1 - test_fraction``. The
    image headers are checked now unless ``check_files=False``."""
    a = read_isic2016(folder)
    ds = _image_dataset(
        a, ISIC_INFO, ISIC_CLASSES, meta=("image_id", "part"), transform=transform, check_files=check_files
    )
    if (a["part"] == "test").any():
        train = a["part"] == "train"
    else:
        train = stratified_mask(
            ds.labels, test_fraction=check_fraction(test_fraction, "test_fraction"), seed=seed
        )
    return SplitSource(ds, train, by_class=False)


# --------------------------------------------------------------------------------------------------------- PH2
def _ph2_root(folder: Path) -> Path:
    """``folder`` itself, or its ``PH2Dataset/`` sub-folder when that holds the official layout."""
    sub = folder / "PH2Dataset"
    if not (folder / "labels.csv").is_file() and not (folder / PH2_IMAGES_DIR).is_dir() and sub.is_dir():
        return sub
    return folder


def ph2_check(folder: Path) -> str | None:
    """The first missing file or folder (None when ``folder`` holds a readable PH2 layout)."""
    root = _ph2_root(folder)
    if (root / "labels.csv").is_file():
        return next((f"{d}/" for d in ("images", "masks") if not (root / d).is_dir()), None)
    if (root / PH2_IMAGES_DIR).is_dir():
        return None if (root / PH2_TXT).is_file() else PH2_TXT
    return f"labels.csv (or '{PH2_IMAGES_DIR}/' and {PH2_TXT})"


def read_ph2_txt(path: str | Path) -> dict[str, int]:
    """``{image id: clinical diagnosis 0/1/2}`` from ``PH2_dataset.txt``: the official ``||``/``|``-separated
    table or a tab-separated copy (legend rows after the table are ignored)."""
    path = Path(path)
    lines = path.read_text(encoding="latin-1").splitlines()
    header, out = None, {}
    for line in lines:
        if "|" in line:
            cells = [c.strip() for c in line.strip().strip("|").replace("||", "|").split("|")]
        else:
            cells = [c.strip() for c in line.split("\t")]
        if header is None:
            lowered = [c.lower() for c in cells]
            if "name" in lowered and "clinical diagnosis" in lowered:
                header = (lowered.index("name"), lowered.index("clinical diagnosis"))
            continue
        if len(cells) <= max(header) or not re.fullmatch(r"IMD\d+", cells[header[0]]):
            continue
        value = cells[header[1]]
        if value not in ("0", "1", "2"):
            raise ValueError(
                f"{path}: clinical diagnosis of {cells[header[0]]} is {value!r}, expected 0, 1 or 2"
            )
        out[cells[header[0]]] = int(value)
    if header is None:
        raise ValueError(f"{path} has no header row with 'Name' and 'Clinical Diagnosis'")
    if not out:
        raise ValueError(f"{path} lists no images (rows 'IMDxxx ... diagnosis')")
    return out


def read_ph2(folder: str | Path) -> dict[str, np.ndarray]:
    """``{"image_id", "path", "mask" (mask file), "label" (0 common nevus, 1 atypical nevus, 2 melanoma)}``."""
    folder = Path(folder)
    missing = ph2_check(folder)
    if missing is not None:
        raise not_found(PH2_INFO.name, folder, missing, where=PH2_INFO.how_to_get())
    root = _ph2_root(folder)
    if (root / "labels.csv").is_file():
        t = read_csv(root / "labels.csv")
        if "image" not in t or "label" not in t:
            raise ValueError(f"{root / 'labels.csv'} needs the columns 'image' and 'label'; has {sorted(t)}")
        names = [str(n) for n in t["image"]]
        labels = [int(v) for v in t["label"]]
        paths = [root / "images" / f"{n}.jpg" for n in names]
        masks = [root / "masks" / f"{n}_lesion.png" for n in names]
    else:
        diagnosis = read_ph2_txt(root / PH2_TXT)
        names = sorted(diagnosis)
        labels = [diagnosis[n] for n in names]
        base = root / PH2_IMAGES_DIR
        paths = [base / n / f"{n}_Dermoscopic_Image" / f"{n}.bmp" for n in names]
        masks = [base / n / f"{n}_lesion" / f"{n}_lesion.bmp" for n in names]
    if any(v not in (0, 1, 2) for v in labels):
        raise ValueError(f"{root}: PH2 labels must be 0, 1 or 2; got {sorted(set(labels))}")
    _existing(root, paths + masks, PH2_INFO.name, PH2_INFO.how_to_get())
    return {
        "image_id": np.asarray(names),
        "path": np.asarray([str(p) for p in paths]),
        "mask": np.asarray([str(p) for p in masks]),
        "label": np.asarray(labels, dtype=np.int64),
    }


def load_ph2(
    folder: Path,
    *,
    test_fraction: float = 0.3,
    seed: int = 0,
    transform: object = None,
    check_files: bool = True,
) -> SplitSource:
    """Every image (lazily decoded) with ``meta["mask"]`` (its lesion-mask file) and ``meta["image_id"]``;
    a stratified ``1 - test_fraction`` on the train side. The image headers are checked now unless
    ``check_files=False``."""
    a = read_ph2(folder)
    ds = _image_dataset(
        a, PH2_INFO, PH2_CLASSES, meta=("image_id", "mask"), transform=transform, check_files=check_files
    )
    train = stratified_mask(
        ds.labels, test_fraction=check_fraction(test_fraction, "test_fraction"), seed=seed
    )
    return SplitSource(ds, train, by_class=False)


# ------------------------------------------------------------------------------------------- decoding at a size
def load_mask(path: str | Path, size: int | Sequence[int] | None = None) -> Tensor:
    """A lesion mask file as a boolean (H, W) tensor (pixel > 127 = lesion); ``size`` resizes it first (bilinear,
    then thresholded at one half, so the area is kept)."""
    image_mod = require("PIL.Image", "reading lesion masks")
    with image_mod.open(path) as im:
        im = im.convert("L")
        if size is not None:
            h, w = check_size(size)
            im = im.resize((w, h), image_mod.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(im) > 127)  # (H, W) bool


def _decode(path: str, size: tuple[int, int]) -> np.ndarray:
    image_mod = require("PIL.Image", "decoding images")
    with image_mod.open(path) as im:
        im.draft("RGB", (size[1] * 2, size[0] * 2))  # JPEG: decode at a reduced scale when much larger
        return np.asarray(im.convert("RGB").resize((size[1], size[0]), image_mod.Resampling.BILINEAR))


def lesion_tensors(
    dataset: DMLDataset, size: int | Sequence[int], *, masks: bool = True, progress: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Every image of ``dataset`` resized to ``size`` (the whole image, aspect ratio not kept, so no part of the
    lesion is cropped away) as ``uint8`` (N, 3, H, W), and its lesion mask at the same size as bool (N, H, W).

    Works for the folder datasets (:func:`load_ph2`: masks from the files in ``meta["mask"]``; ISIC has none) and
    for :func:`make_lesions` (masks in ``meta["mask"]`` as arrays). ``masks=False``, or a dataset without masks,
    gives ``None`` for them.
    """
    h, w = check_size(size)
    bar = require("tqdm.auto", "progress bars").tqdm if progress else None
    mask_meta = dataset.meta.get("mask") if masks else None
    if isinstance(dataset, ImageDataset):
        idx = range(len(dataset))
        it = bar(idx, desc=f"decoding {dataset.name or 'images'}", leave=False) if bar else idx
        images = torch.from_numpy(np.stack([_decode(dataset.paths[i], (h, w)) for i in it])).permute(
            0, 3, 1, 2
        )
        out_masks = None
        if mask_meta is not None:
            out_masks = torch.stack([load_mask(p, (h, w)) for p in mask_meta])
        return images.contiguous(), out_masks
    if dataset.data is None or dataset.data.dim() != 4:
        raise ValueError("lesion_tensors needs an image dataset (files, or in-memory (N, 3, H, W) images)")
    x = dataset.data
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    out_masks = torch.as_tensor(np.asarray(mask_meta, dtype=bool)) if mask_meta is not None else None
    if tuple(x.shape[-2:]) != (h, w):
        x = (
            torch.nn.functional.interpolate(
                x.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True
            )
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
        )
        if out_masks is not None:
            out_masks = (
                torch.nn.functional.interpolate(
                    out_masks[:, None].float(),
                    size=(h, w),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )[:, 0]
                >= 0.5
            )
    return x.contiguous(), out_masks


# ------------------------------------------------------------------------------------------------ augmentation
class RandomDihedral:
    """A random element of the dihedral group of the square: horizontal flip, vertical flip and transpose, each
    with probability 1/2 (8 orientations, uniformly). For (C, H, W) tensors with H == W (images or feature maps);
    dermoscopy images have no canonical orientation. Draws from torch's global generator."""

    def __call__(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[-1] != x.shape[-2]:
            raise ValueError("RandomDihedral needs a square (..., H, W) tensor with H == W")
        flips = torch.rand(3)
        if flips[0] < 0.5:
            x = x.flip(-1)
        if flips[1] < 0.5:
            x = x.flip(-2)
        if flips[2] < 0.5:
            x = x.transpose(-1, -2)
        return x

    def __repr__(self) -> str:
        return "RandomDihedral()"


__all__ = [
    "ISIC_CLASSES",
    "ISIC_INFO",
    "PH2_CLASSES",
    "PH2_INFO",
    "RandomDihedral",
    "isic_check",
    "lesion_tensors",
    "load_isic2016",
    "load_mask",
    "load_ph2",
    "make_lesions",
    "ph2_check",
    "read_isic2016",
    "read_ph2",
    "read_ph2_txt",
]

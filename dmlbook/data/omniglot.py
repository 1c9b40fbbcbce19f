"""Omniglot (Lake, Salakhutdinov & Tenenbaum, "Human-level concept learning through probabilistic program
induction", Science 350:1332, 2015): 1,623 handwritten characters from 50 alphabets, 20 drawings of each by 20
people, 105x105 black-on-white PNG. MIT licence (c) 2015 Brenden Lake.

Two registered datasets share one layout of samples, labels and metadata:

* ``omniglot`` reads the official files from brendenlake/omniglot (folder ``python/``): the zips
  ``images_background.zip`` and ``images_evaluation.zip``, or the folders they extract to,
  ``images_background/<Alphabet>/characterNN/IIII_DD.png`` (IIII: the character's id 0001-1623, DD: the drawer
  01-20). Every image is decoded in one pass and downsampled to ``image_size`` (28 by default).
* ``omniglot_embedded`` ships inside the package (``dmlbook/data/embedded/omniglot28.npz``, about 0.8 MB): all
  32,460 images at 28x28, binarised and bit-packed, so the book's defaults run offline. It is exactly what
  ``omniglot`` returns at its defaults (``image_size=28, binarize=True``), so a model trained on one reads
  the other. ``scripts/build_omniglot_subset.py`` rebuilds it from the official zips and checks its SHA-256.

Split (class-disjoint): the 964 background characters (30 alphabets) are the train side and the 659 evaluation
characters (20 alphabets) the test set. ``split="val"`` holds out whole background *alphabets*
(``val_fraction`` of the 30, seeded), so validation characters come from scripts never seen in training.

Pixels: the strokes are inverted, so ink is 1 (255 as uint8) and the background 0. Downsampling is exact area
averaging: an output pixel's value is the fraction c of its area that is ink in the 105x105 original (computed
in integers, so it does not depend on the image library). ``binarize=True`` keeps pixels with c >= 1/4 (strokes
stay connected at 28x28: a majority rule, c >= 1/2, breaks the strokes of about 5 % of the characters);
``binarize=False`` keeps c as a grey level, round(255 c). The decoding and the downsampling
(:func:`decode_ink`, :func:`downsample`) live in :mod:`dmlbook.data.omniglot_pixels` and are importable from here.

Metadata: ``class_ids`` are the official character ids, ``class_names`` are ``"Alphabet/characterNN"`` and
``meta`` holds ``alphabet``, ``drawer`` (1-20) and ``part`` (``"background"``/``"evaluation"``) per sample;
:func:`class_alphabets` gives the alphabet of each class.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import zipfile
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .._checks import check_flag, check_int
from .dataset import DMLDataset
from .errors import not_found
from .info import DatasetInfo, RemoteFile
from .omniglot_pixels import (
    _REPO,
    EMBEDDED_SIZE,
    ORIGINAL_SIZE,
    _damaged,
    _decode_packed,
    _downsample_packed,
    decode_ink,
    downsample,
)
from .splits import SplitSource

__all__ = [  # decode_ink, downsample, ORIGINAL_SIZE and EMBEDDED_SIZE are re-exported from omniglot_pixels
    "EMBEDDED_FILE",
    "EMBEDDED_INFO",
    "EMBEDDED_SIZE",
    "INFO",
    "ORIGINAL_SIZE",
    "PARTS",
    "build_embedded",
    "check",
    "class_alphabets",
    "decode_ink",
    "downsample",
    "embedded_path",
    "embedded_sha256",
    "load",
    "load_embedded",
    "read_embedded",
]

PARTS = ("background", "evaluation")
EMBEDDED_FILE = "omniglot28.npz"
_RAW = _REPO + "/raw/master/python/"
# MD5 of the official zips (as published by torchvision's Omniglot dataset); re-encoded copies differ
_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
_CITATION = (
    "B. M. Lake, R. Salakhutdinov, J. B. Tenenbaum. Human-level concept learning through probabilistic "
    "program induction. Science 350(6266):1332-1338, 2015."
)
_SPLIT = (
    "964 background characters (30 alphabets) train, 659 evaluation characters (20 alphabets) test; "
    "val holds out whole background alphabets"
)

INFO = DatasetInfo(
    name="omniglot",
    title="Omniglot (handwritten characters of 50 alphabets)",
    input_kind="gray28",
    input_shape=(1, EMBEDDED_SIZE, EMBEDDED_SIZE),
    num_classes=1623,
    split=_SPLIT,
    embedding_dim=64,
    batch_p=32,
    batch_k=4,
    source="download",
    url=_REPO + " (folder python/)",
    license="MIT (c) 2015 Brenden Lake",
    citation=_CITATION,
    folders=("omniglot", "omniglot-py", "Omniglot"),
    files=tuple(RemoteFile(_RAW + name, name, md5=md5) for name, md5 in _MD5.items()),
    manual="Or: git clone https://github.com/brendenlake/omniglot and pass root=<clone>/python. The zips are "
    "read as they are (no need to extract them); the extracted images_background/ and "
    "images_evaluation/ folders work too.",
)
EMBEDDED_INFO = DatasetInfo(
    name="omniglot_embedded",
    title="Omniglot at 28x28, binarised (ships with dmlbook)",
    input_kind="gray28",
    input_shape=(1, EMBEDDED_SIZE, EMBEDDED_SIZE),
    num_classes=1623,
    split=_SPLIT,
    embedding_dim=64,
    batch_p=32,
    batch_k=4,
    source="package",
    url=_REPO,
    license="MIT (c) 2015 Brenden Lake",
    citation=_CITATION,
)

# <Alphabet>/<character folder>/<IIII>_<DD>.png under images_<part>/
_PATH = re.compile(r"images_(background|evaluation)/([^/]+)/([^/]+)/([^/]+\.png)")
_FILE = re.compile(r"(\d+)_(\d+)\.png")


# ------------------------------------------------------------------------------------------------ finding files
def _part_source(folder: Path, part: str) -> Path | None:
    """The zip (preferred) or extracted folder of ``part`` in ``folder`` or ``folder/python``."""
    for base in (folder, folder / "python"):
        if (base / f"images_{part}.zip").is_file():
            return base / f"images_{part}.zip"
        if (base / f"images_{part}").is_dir():
            return base / f"images_{part}"
    return None


def check(folder: Path) -> str | None:
    """The first missing official file (as ``images_<part>.zip`` or its extracted folder), or None."""
    for part in PARTS:
        if _part_source(folder, part) is None:
            return f"images_{part}.zip (or the extracted images_{part}/ folder)"
    return None


def _zip_members(source: Path, part: str) -> tuple[list[str], list[bytes]]:
    """``(names, bytes)`` of the part's PNGs in a zip. Members are sliced out of the file read once (the official
    zips store their PNGs uncompressed), each checked against its CRC-32."""
    buf = source.read_bytes()
    names, blobs = [], []
    with zipfile.ZipFile(io.BytesIO(buf)) as archive:
        for info in archive.infolist():
            match = _PATH.fullmatch(info.filename)
            if not match or match.group(1) != part:
                continue
            head = info.header_offset
            if buf[head : head + 4] != b"PK\x03\x04":
                raise zipfile.BadZipFile(f"bad local header of {info.filename}")
            start = (
                head
                + 30
                + int.from_bytes(buf[head + 26 : head + 28], "little")
                + int.from_bytes(buf[head + 28 : head + 30], "little")
            )
            data = buf[start : start + info.compress_size]
            if info.compress_type == zipfile.ZIP_DEFLATED:
                data = zlib.decompress(data, -15)
            elif info.compress_type != zipfile.ZIP_STORED:
                data = archive.read(info)  # other methods (bzip2, lzma): zipfile's reader
            if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
                raise zipfile.BadZipFile(f"bad CRC-32 or size for file {info.filename}")
            names.append(info.filename)
            blobs.append(data)
    return names, blobs


def _read_part(source: Path, part: str) -> tuple[list[str], list[bytes]]:
    """``(relative paths, PNG bytes)`` of every image of one part, from its zip or its folder."""
    if source.is_dir():
        paths = sorted(source.glob("*/*/*.png"))
        names = [f"images_{part}/{path.relative_to(source).as_posix()}" for path in paths]
        blobs = [path.read_bytes() for path in paths]
    else:
        try:
            names, blobs = _zip_members(source, part)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
            raise _damaged(source, f"{type(err).__name__}: {err}") from err
    if not names:
        raise _damaged(source, f"no images in the layout images_{part}/<Alphabet>/characterNN/IIII_DD.png")
    return names, blobs


# ------------------------------------------------------------------------------------------------ the dataset
def _parse(names: Sequence[str], where: Path) -> dict[str, np.ndarray]:
    """Per image: ``class_id``, ``drawer``, ``folder`` ("Alphabet/characterNN") and ``part``."""
    cols: dict[str, list] = {"class_id": [], "drawer": [], "folder": [], "part": []}
    for name in names:
        path, file = _PATH.fullmatch(name), _FILE.fullmatch(name.rsplit("/", 1)[-1])
        if path is None or file is None:
            raise _damaged(where, "expected images_<part>/<Alphabet>/characterNN/IIII_DD.png", member=name)
        cols["class_id"].append(int(file.group(1)))
        cols["drawer"].append(int(file.group(2)))
        cols["folder"].append(f"{path.group(2)}/{path.group(3)}")
        cols["part"].append(path.group(1))
    return {k: np.asarray(v) for k, v in cols.items()}


def _class_table(cols: dict[str, np.ndarray], where: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(class_ids, class_names, class_part)`` sorted by id; each id must be one character folder."""
    ids, first = np.unique(cols["class_id"], return_index=True)
    names, part = cols["folder"][first], cols["part"][first]
    label = np.searchsorted(ids, cols["class_id"])  # (N,)
    clash = np.flatnonzero((names[label] != cols["folder"]) | (part[label] != cols["part"]))
    if clash.size:
        i = clash[0]
        raise _damaged(
            where,
            f"character id {cols['class_id'][i]:04d} appears in {names[label[i]]} and in "
            f"{cols['folder'][i]}; each character folder must hold one id",
        )
    if len(np.unique(names)) != len(names):
        raise _damaged(where, "a character folder holds images of several ids")
    return ids, names, part


def _assemble(
    images: np.ndarray,
    class_id: np.ndarray,
    drawer: np.ndarray,
    class_ids: np.ndarray,
    class_names: np.ndarray,
    class_part: np.ndarray,
    *,
    info: DatasetInfo,
) -> SplitSource:
    """The dataset, sorted by (class id, drawer), with the background characters on the train side and the
    alphabets as the groups of the validation carve-out."""
    order = np.lexsort((drawer, class_id))
    labels = np.searchsorted(class_ids, class_id[order])  # (N,)
    class_alphabet = np.asarray([str(n).split("/")[0] for n in class_names])
    alphabet, part = class_alphabet[labels], np.asarray(class_part)[labels]
    data = torch.from_numpy(np.ascontiguousarray(images[order]))[:, None]  # (N, 1, s, s) uint8, ink = 255
    ds = DMLDataset(
        data,
        labels,
        class_ids=class_ids,
        class_names=[str(n) for n in class_names],
        meta={"alphabet": alphabet, "drawer": drawer[order].astype(np.int64), "part": part},
        name=info.name,
        info=info,
    )
    return SplitSource(ds, part == "background", groups=alphabet)


def _decode_part(
    source: Path, part: str, image_size: int, binarize: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    names, blobs = _read_part(source, part)
    return _parse(names, source), _downsample_packed(
        _decode_packed(blobs, names, source), image_size, binarize
    )


@functools.lru_cache(maxsize=4)
def _decode_zip(
    path: str, stamp: tuple[int, int], part: str, image_size: int, binarize: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """:func:`_decode_part` of a zip, kept for the process (``stamp``: size and mtime, so a replaced file is
    read again): loading train, val and test decodes each zip once."""
    del stamp
    return _decode_part(Path(path), part, image_size, binarize)


def load(folder: Path, *, image_size: int = EMBEDDED_SIZE, binarize: bool = True) -> SplitSource:
    """All 32,460 images from the official zips (or their extracted folders) in ``folder``, as uint8
    (N, 1, s, s) with ink = 255 (returned as float in [0, 1]); see the module docstring for the pixels.

    The decoded zips are cached in memory for the process (at most 4 parts), so each split loads fast."""
    image_size = check_int(image_size, "image_size", 1, maximum=ORIGINAL_SIZE)
    check_flag(binarize, "binarize")
    folder = Path(folder)
    parts = []
    for part in PARTS:
        source = _part_source(folder, part)
        if source is None:
            raise not_found(INFO.name, folder, f"images_{part}.zip", where=INFO.how_to_get())
        if source.is_file():
            stat = source.stat()
            cols, images = _decode_zip(
                str(source.resolve()), (stat.st_size, stat.st_mtime_ns), part, image_size, binarize
            )
        else:
            cols, images = _decode_part(source, part, image_size, binarize)
        parts.append((cols, images))
    cols = {k: np.concatenate([c[k] for c, _ in parts]) for k in parts[0][0]}
    class_ids, class_names, class_part = _class_table(cols, folder)
    return _assemble(
        np.concatenate([im for _, im in parts]),
        cols["class_id"],
        cols["drawer"],
        class_ids,
        class_names,
        class_part,
        info=INFO,
    )


def class_alphabets(dataset: DMLDataset) -> list[str]:
    """The alphabet of each class of an Omniglot dataset (length ``num_classes``), from its class names."""
    if dataset.class_names is None:
        raise ValueError("dataset has no class_names; expected an Omniglot dataset ('Alphabet/characterNN')")
    return [name.split("/")[0] for name in dataset.class_names]


# ------------------------------------------------------------------------------------------------ embedded copy
def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A ``.npz`` (readable by ``numpy.load``) with the same bytes on every run: members in sorted order, a fixed
    date and attributes, deflate level 9."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(
                member, np.ascontiguousarray(arrays[key]), version=(1, 0), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def build_embedded(folder: str | Path) -> bytes:
    """The bytes of the embedded file, rebuilt from the official files in ``folder`` (deterministic).

    Members: ``pixels`` (N, 98) uint8 = ``numpy.packbits`` of the 28x28 binarised images (ink = 1, row-major),
    ``class_id`` (N,) and ``drawer`` (N,) per image, ``class_ids``, ``class_names`` and ``class_part``
    (0 background, 1 evaluation) per character.
    """
    ds = load(Path(folder), image_size=EMBEDDED_SIZE, binarize=True).dataset
    bits = ds.data.numpy().reshape(len(ds), -1) > 127  # (N, 784)
    first = np.unique(ds.labels, return_index=True)[1]  # (C,) the first image of each class
    return _npz_bytes(
        {
            "pixels": np.packbits(bits, axis=1),
            "class_id": ds.class_ids[ds.labels].astype(np.int16),
            "drawer": ds.meta["drawer"].astype(np.uint8),
            "class_ids": ds.class_ids.astype(np.int16),
            "class_names": np.asarray(ds.class_names, dtype=str),
            "class_part": (ds.meta["part"][first] == "evaluation").astype(np.uint8),
        }
    )


def embedded_path() -> resources.abc.Traversable:
    """Where the embedded file is installed (inside the package)."""
    return resources.files("dmlbook.data").joinpath("embedded", EMBEDDED_FILE)


def embedded_sha256() -> str:
    """The SHA-256 recorded for the embedded file (``embedded/SHA256SUMS``)."""
    record = resources.files("dmlbook.data").joinpath("embedded", "SHA256SUMS").read_text(encoding="utf-8")
    for line in record.splitlines():
        digest, _, name = line.strip().partition("  ")
        if name == EMBEDDED_FILE:
            return digest
    raise ValueError(f"dmlbook/data/embedded/SHA256SUMS has no line for {EMBEDDED_FILE}")


def read_embedded(blob: bytes | None = None) -> SplitSource:
    """Decode the embedded file (``blob``: its bytes; default: the installed file, checked against its SHA-256)."""
    if blob is None:
        blob = embedded_path().read_bytes()
        if hashlib.sha256(blob).hexdigest() != embedded_sha256():
            raise _damaged(
                embedded_path(),
                "SHA-256 differs from embedded/SHA256SUMS; reinstall dmlbook or rebuild "
                "it with scripts/build_omniglot_subset.py",
            )
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    n = len(arrays["class_id"])
    bits = np.unpackbits(arrays["pixels"], axis=1, count=EMBEDDED_SIZE * EMBEDDED_SIZE)  # (N, 784)
    images = (bits * np.uint8(255)).reshape(n, EMBEDDED_SIZE, EMBEDDED_SIZE)  # (N, 28, 28)
    part = np.where(arrays["class_part"] == 1, "evaluation", "background")
    return _assemble(
        images,
        arrays["class_id"].astype(np.int64),
        arrays["drawer"].astype(np.int64),
        arrays["class_ids"].astype(np.int64),
        arrays["class_names"],
        part,
        info=EMBEDDED_INFO,
    )


def load_embedded(
    folder: object = None, *, image_size: int = EMBEDDED_SIZE, binarize: bool = True
) -> SplitSource:
    """The Omniglot copy that ships with dmlbook: all 32,460 images, 28x28, binarised (no files needed).

    ``image_size`` and ``binarize`` exist so that code switching between ``omniglot`` and ``omniglot_embedded``
    keeps working; only the stored setting (28, True) is available here.
    """
    if check_int(image_size, "image_size", 1) != EMBEDDED_SIZE or not check_flag(binarize, "binarize"):
        raise ValueError(
            f"omniglot_embedded holds 28x28 binarised images only (got image_size={image_size}, "
            f"binarize={binarize}); other settings need the official zips: "
            "load_dataset('omniglot', image_size=..., binarize=...)"
        )
    return read_embedded()

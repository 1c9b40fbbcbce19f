"""Fashion-MNIST (Xiao, Rasul, Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
Algorithms", arXiv:1708.07747, 2017): 70,000 grey 28x28 images of 10 clothing classes, MIT licence.

The loader reads the four official IDX files (gzipped or not) from a folder, e.g. ``$DMLBOOK_DATA/fashion_mnist``
or Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``).

Protocols: ``"classes"`` (default, for metric learning) uses all 70,000 images, classes 0-4 train and 5-9 test;
``"images"`` is the usual 60,000 / 10,000 image split over all classes (validation: random training images).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from .._checks import check_choice
from .dataset import DMLDataset
from .errors import DamagedFileError, not_found
from .info import DatasetInfo, RemoteFile
from .splits import SplitSource

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# SHA-256 of the official files (the MD5s are the ones published in the Fashion-MNIST README)
_DIGESTS = {
    "train-images-idx3-ubyte.gz": (
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    "train-labels-idx1-ubyte.gz": (
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
}

INFO = DatasetInfo(
    name="fashion_mnist",
    title="Fashion-MNIST (Zalando Research)",
    input_kind="gray28",
    input_shape=(1, 28, 28),
    num_classes=10,
    split="classes 0-4 train, 5-9 test (protocol='images': official 60k/10k image split)",
    embedding_dim=64,
    batch_p=4,
    batch_k=32,
    source="download",
    url="https://github.com/zalandoresearch/fashion-mnist",
    license="MIT",
    citation="H. Xiao, K. Rasul, R. Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
    "Learning Algorithms. arXiv:1708.07747, 2017.",
    folders=("fashion_mnist", "fashion-mnist", "FashionMNIST/raw"),
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    files=tuple(RemoteFile(_BASE + f, f, sha256=s, md5=m) for f, (s, m) in _DIGESTS.items()),
    manual="On Debian/Ubuntu: apt-get install dataset-fashion-mnist (read from /usr/share/datasets/fashion-mnist).",
)

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def check(folder: Path) -> str | None:
    """The first missing official file in ``folder`` (``.gz`` or uncompressed), or None."""
    for name in FILES["train"] + FILES["test"]:
        if _find(folder, name) is None:
            return name
    return None


def _replace_hint(path: Path) -> str:
    return (
        f"replace it: python -m dmlbook data download {INFO.name} --force --root {path.parent} "
        "(or copy it again)"
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format, optionally gzipped) into a numpy array.

    A file that is truncated, fails to decompress (gzip checks its CRC-32 and length) or whose size does not
    match its header raises :class:`~dmlbook.data.errors.DamagedFileError` naming it and how to replace it."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except EOFError as err:
        size = path.stat().st_size
        raise DamagedFileError(
            f"{path} is truncated: its compressed stream ends early ({size} bytes); {_replace_hint(path)}",
            path=path,
        ) from err
    except (gzip.BadGzipFile, zlib.error) as err:
        kind = "zlib.error" if isinstance(err, zlib.error) else type(err).__name__
        raise DamagedFileError(
            f"{path} is not a valid gzip file ({kind}: {err}); {_replace_hint(path)}", path=path
        ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DamagedFileError(
            f"{path} is not an IDX file (bad magic number {raw[:4].hex()}); {_replace_hint(path)}", path=path
        )
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DamagedFileError(
            f"{path} is truncated inside its IDX header ({len(raw)} bytes); {_replace_hint(path)}", path=path
        )
    shape = tuple(int(v) for v in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DamagedFileError(
            f"{path}: header says shape {shape} ({expected} bytes) but the file has "
            f"{len(raw)} bytes (truncated or corrupt); {_replace_hint(path)}",
            path=path,
        )
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def read_fashion_mnist(folder: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images, labels), "test": (images, labels)}`` as uint8 (N, 28, 28) and int64 (N,)."""
    folder, out = Path(folder), {}
    missing = check(folder)
    if missing:
        raise not_found(INFO.name, folder, missing, where=INFO.how_to_get())
    for part, (img_name, lab_name) in FILES.items():
        images, labels = read_idx(_find(folder, img_name)), read_idx(_find(folder, lab_name))
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(
                f"{folder}: {img_name} has shape {images.shape} but {lab_name} has {len(labels)} labels"
            )
        out[part] = (images, labels.astype(np.int64))
    return out


def load(folder: Path, *, protocol: str = "classes") -> SplitSource:
    """All 70,000 images (official train file first) as uint8 (N, 1, 28, 28), returned as float in [0, 1]."""
    check_choice(protocol, ("classes", "images"), "protocol")
    parts = read_fashion_mnist(folder)
    images = np.concatenate([parts["train"][0], parts["test"][0]])
    labels = np.concatenate([parts["train"][1], parts["test"][1]])
    source = np.repeat(np.array(["train", "t10k"]), [len(parts["train"][1]), len(parts["test"][1])])
    ds = DMLDataset(
        torch.from_numpy(images)[:, None],
        labels,
        class_ids=np.arange(10),
        class_names=CLASS_NAMES,
        meta={"file": source},
        name="fashion_mnist",
        info=INFO,
    )
    if protocol == "images":
        return SplitSource(ds, source == "train", by_class=False)
    return SplitSource(ds, labels < 5)

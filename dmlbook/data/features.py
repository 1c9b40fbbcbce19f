"""Precomputed features in a ``.npz`` file: one feature matrix, one label per row.

The files in ``$DMLBOOK_DATA`` (``cars196_half``, ``ucmerced16``, ``ph2``, ``isic2016``:
``features_mobilenet.npz``) hold ``labels`` (int64), ``fnames`` and two feature matrices computed with
quantised ImageNet MobileNets (Howard et al. 2017; Sandler et al., CVPR 2018) from a 224x224 centre crop:
``mobilenet_v2_1.0_224_quant`` (N x 1280, global average pool) and ``mobilenet_v1_1.0_224_quant_emb``
(N x 1024). Training a small embedding head on frozen features is a fast real benchmark.

``cars196_features`` reads ``features_mobilenet.npz`` from the Cars196 folder (default key
``mobilenet_v1_1.0_224_quant_emb``, split classes 1-98 / 99-196); ``ucmerced_features`` reads it from the UC Merced
folder (default key ``mobilenet_v2_1.0_224_quant``; ``protocol="classes"``: classes 0-7 / 8-15, ``"scenes"``: a
stratified per-class image split for scene classification); ``features`` reads any ``.npz``
(``root`` = the file, or a folder holding ``features_mobilenet.npz``), first half of the sorted classes train.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .dataset import DMLDataset
from .info import DatasetInfo
from .splits import SplitSource, class_mask, first_classes, stratified_mask

DEFAULT_FILE = "features_mobilenet.npz"
CARS_KEY = "mobilenet_v1_1.0_224_quant_emb"

INFO = DatasetInfo(
    name="features",
    title="Precomputed features (.npz: a feature matrix and labels)",
    input_kind="features",
    input_shape=None,
    num_classes=None,
    split="first half of the sorted classes train, rest test",
    embedding_dim=128,
    batch_p=8,
    batch_k=4,
    source="manual",
    manual="No download: pass root= pointing at an .npz file (or a folder with features_mobilenet.npz), e.g. "
    "$DMLBOOK_DATA/ucmerced16. Keys: 'labels' and a 2-D feature array (choose it with key=).",
)

CARS_INFO = DatasetInfo(
    name="cars196_features",
    title="Cars196 frozen MobileNet-v1 features (features_mobilenet.npz)",
    input_kind="features",
    input_shape=(1024,),
    num_classes=196,
    split="classes 1-98 train, 99-196 test",
    embedding_dim=128,
    batch_p=32,
    batch_k=4,
    source="manual",
    url="https://ai.stanford.edu/~jkrause/cars/car_dataset.html (images); features computed for dmlbook",
    license="features of Cars196 images: non-commercial research use; MobileNet models Apache-2.0",
    citation="J. Krause et al., 3dRR 2013 (images); A. Howard et al., MobileNets, arXiv:1704.04861 (model).",
    folders=("cars196", "cars196_half", "stanford_cars"),
    manual="No public download: features_mobilenet.npz is computed from the Cars196 images (see "
    "data/README.md); pass root= (the folder or the .npz file).",
)


def npz_path(root: Path, file: str = DEFAULT_FILE) -> Path:
    """``root`` itself if it is a file, else ``root/file``."""
    return root if root.is_file() else root / file


def check(root: Path, file: str = DEFAULT_FILE) -> str | None:
    """``file`` when no feature file is found at ``root``, else None."""
    return None if npz_path(root, file).is_file() else file


def read_npz(
    path: Path, *, key: str | None = None, labels_key: str = "labels"
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(features float32 (N, D), labels int64 (N,), other per-row arrays)`` from an ``.npz`` file.

    ``key=None`` picks ``"features"`` if present, else the only 2-D floating-point array (ValueError if several).
    """
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if labels_key not in arrays:
        raise ValueError(f"{path} has no labels array {labels_key!r}; keys are {sorted(arrays)}")
    matrices = sorted(k for k, v in arrays.items() if v.ndim == 2 and np.issubdtype(v.dtype, np.floating))
    if key is None:
        if "features" in arrays or len(matrices) == 1:
            key = "features" if "features" in arrays else matrices[0]
        else:
            raise ValueError(f"{path} holds several feature arrays {matrices}; choose one with key=")
    if key not in arrays:
        raise ValueError(f"{path} has no array {key!r}; feature arrays are {matrices}")
    x, labels = arrays.pop(key), arrays.pop(labels_key)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(f"{path}: {key!r} has shape {x.shape} but there are {len(labels)} labels")
    extra = {k: v for k, v in arrays.items() if v.ndim == 1 and len(v) == len(labels)}
    return x.astype(np.float32, copy=False), labels.astype(np.int64), extra


def _dataset(path: Path, key: str | None, name: str, info: DatasetInfo) -> DMLDataset:
    x, labels, extra = read_npz(path, key=key)
    return DMLDataset(torch.from_numpy(np.ascontiguousarray(x)), labels, meta=extra, name=name, info=info)


def load(
    root: Path,
    *,
    key: str | None = None,
    file: str = DEFAULT_FILE,
    train_classes: int | Sequence[int] | None = None,
) -> SplitSource:
    """Generic ``.npz`` features; ``train_classes``: a count (first of the sorted labels) or label values."""
    ds = _dataset(npz_path(root, file), key, f"features:{root.name}", INFO)
    return SplitSource(ds, first_classes(ds, train_classes))


def load_cars(root: Path, *, key: str = CARS_KEY, file: str = DEFAULT_FILE) -> SplitSource:
    """Cars196 features; labels are the class ids 1-196; classes 1-98 on the train side."""
    ds = _dataset(npz_path(root, file), key, "cars196_features", CARS_INFO)
    return SplitSource(ds, class_mask(ds.labels, ds.class_ids, np.arange(1, 99)))


UCMERCED_KEY = "mobilenet_v2_1.0_224_quant"
UCMERCED_PROTOCOLS = ("classes", "scenes")

UCMERCED_INFO = DatasetInfo(
    name="ucmerced_features",
    title="UC Merced Land Use (16-class subset) frozen MobileNetV2 features",
    input_kind="features",
    input_shape=(1280,),
    num_classes=16,
    split="classes 0-7 train, 8-15 test (protocol='scenes': stratified per-class image split, test_fraction)",
    embedding_dim=128,
    batch_p=8,
    batch_k=4,
    source="manual",
    url="http://weegee.vision.ucmerced.edu/datasets/landuse.html (images); features computed for dmlbook",
    license="UC Merced: public-domain USGS imagery, 'meant for research purposes'; MobileNet models Apache-2.0",
    citation="Y. Yang, S. Newsam, ACM SIGSPATIAL GIS 2010 (images); M. Sandler et al., MobileNetV2, CVPR 2018 "
    "(model).",
    folders=("ucmerced16", "UCMerced_LandUse", "ucmerced"),
    manual="No public download of the features: features_mobilenet.npz is computed from the images (see "
    "data/README.md); pass root= (the folder or the .npz file).",
)


def load_ucmerced(
    root: Path,
    *,
    key: str = UCMERCED_KEY,
    file: str = DEFAULT_FILE,
    protocol: str = "classes",
    test_fraction: float = 0.2,
    seed: int = 0,
    train_classes: int | Sequence[int] | None = None,
) -> SplitSource:
    """UC Merced features; labels 0-15 (the sorted class folders), class names from ``fnames``.

    ``protocol="classes"``: the class-disjoint DML split (first half of the classes, or ``train_classes``, on the
    train side). ``"scenes"``: every class on both sides, ``test_fraction`` of each class's images on the test side
    (:func:`~dmlbook.data.splits.stratified_mask`, seeded by ``seed``) — scene classification as in the remote-
    sensing literature.
    """
    from .._checks import check_choice

    check_choice(protocol, UCMERCED_PROTOCOLS, "protocol")
    ds = _dataset(npz_path(root, file), key, "ucmerced_features", UCMERCED_INFO)
    fnames = ds.meta.get("fnames")
    if fnames is not None:  # "airplane/airplane07.jpg" -> "airplane", one name per label
        names = {int(label): str(f).split("/")[0] for label, f in zip(ds.labels, fnames)}
        ds.class_names = [names.get(int(c), str(c)) for c in ds.class_ids]
    if protocol == "scenes":
        if train_classes is not None:
            raise ValueError("train_classes is for protocol='classes'; protocol='scenes' keeps every class")
        return SplitSource(
            ds, stratified_mask(ds.labels, test_fraction=test_fraction, seed=seed), by_class=False
        )
    return SplitSource(ds, first_classes(ds, train_classes))

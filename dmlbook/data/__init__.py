"""Datasets for deep metric learning: generated teaching data, real datasets read from their official layouts,
the standard class-disjoint splits, a P x K batch sampler and small image transforms.

Nothing is downloaded unless asked (``python -m dmlbook data download NAME``); see ``data/README.md`` for where
each dataset comes from and how its folder must look. Core dependencies are torch and numpy only; scipy,
pillow, scikit-learn and tqdm are imported when needed (``pip install dmlbook[train]``).
"""

from __future__ import annotations

from .corruption import corrupt, corrupted_mask
from .dataset import DMLDataset, ImageDataset
from .download import download, verify_files
from .errors import ChecksumMismatchError, DamagedFileError, DatasetNotFoundError, DownloadError
from .info import DatasetInfo, RemoteFile
from .registry import (
    candidate_dirs,
    data_home,
    dataset_info,
    dataset_status,
    find_root,
    list_datasets,
    load_dataset,
)
from .sampler import PKSampler
from .splits import SplitSource, apply_split, carve_val_classes
from .synthetic import SyntheticData, make_blobs, make_patterns, make_synthetic

__all__ = [
    "ChecksumMismatchError",
    "DMLDataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageDataset",
    "PKSampler",
    "RemoteFile",
    "SplitSource",
    "SyntheticData",
    "apply_split",
    "candidate_dirs",
    "carve_val_classes",
    "data_home",
    "dataset_info",
    "dataset_status",
    "download",
    "find_root",
    "list_datasets",
    "load_dataset",
    "make_blobs",
    "make_patterns",
    "make_synthetic",
]
__all__ += ["corrupt", "corrupted_mask"]
__all__ += ["DamagedFileError", "verify_files"]

# Free Spoken Digit Dataset (log-mel spectrograms, speaker ids) and dermoscopy (ISIC 2016, PH2 with lesion masks,
# generated lesions); both are in the registry
from . import fsdd, skin
from .skin import RandomDihedral, lesion_tensors, load_mask, make_lesions

__all__ += ["RandomDihedral", "fsdd", "lesion_tensors", "load_mask", "make_lesions", "skin"]

# Stratified per-class sample split (issue 7, scene classification on UC Merced: every class on both sides)
from .splits import stratified_mask, stratified_split

__all__ += ["stratified_mask", "stratified_split"]

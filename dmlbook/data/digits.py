"""scikit-learn's handwritten digits (UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998):
1,797 grey 8x8 images, 10 classes, shipped with scikit-learn, so nothing to download.

For metric learning the split is class-disjoint: digits 0-4 train, 5-9 test.
"""

from __future__ import annotations

import numpy as np
import torch

from ._optional import require
from .dataset import DMLDataset
from .info import DatasetInfo
from .splits import SplitSource

INFO = DatasetInfo(
    name="digits",
    title="Handwritten digits 8x8 (scikit-learn load_digits)",
    input_kind="gray8",
    input_shape=(1, 8, 8),
    num_classes=10,
    split="classes 0-4 train, 5-9 test",
    embedding_dim=16,
    batch_p=4,
    batch_k=16,
    source="package",
    url="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
    license="CC BY 4.0 (UCI); ships with scikit-learn",
    citation="E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI ML Repository, 1998.",
)


def load(root: object = None) -> SplitSource:
    """All 1,797 digits as float32 (1, 8, 8) in [0, 1]; the train side is digits 0-4."""
    sk = require("sklearn.datasets", "the digits dataset")
    bunch = sk.load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    labels = bunch.target.astype(np.int64)
    ds = DMLDataset(
        x, labels, class_ids=np.arange(10), class_names=[str(d) for d in range(10)], name="digits", info=INFO
    )
    return SplitSource(ds, labels < 5)

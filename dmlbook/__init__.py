"""dmlbook: a teaching and analysis workbook for deep metric learning.

The library: :mod:`dmlbook.distances` (pairwise geometry and label masks), :mod:`dmlbook.mining` (who counts and
how much: hard, semi-hard, multi-similarity and soft OSM weights), :mod:`dmlbook.attention` (class-aware attention
and the mixed channel/spatial CNN block), :mod:`dmlbook.losses` (one short ``nn.Module`` per loss).
"""

from __future__ import annotations

import os
import random

__version__ = "0.1.0"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible run."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


__all__ = ["__version__", "seed_everything"]

"""Lazy imports of the optional dependencies (scipy, PIL, scikit-learn, tqdm).

The core of dmlbook needs only torch and numpy; the data package imports the rest inside the functions that use
them, so that ``import dmlbook.data`` works everywhere and a missing extra gives a message that says how to get it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_PIP_NAMES = {"PIL": "pillow", "sklearn": "scikit-learn", "scipy": "scipy", "tqdm": "tqdm"}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming ``purpose`` and the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        raise ImportError(
            f"{purpose} needs {_PIP_NAMES.get(top, top)}, which is not installed: "
            f"pip install dmlbook[train]  (or pip install {_PIP_NAMES.get(top, top)})"
        ) from err

"""``python -m dmlbook.train ...``: the same as ``python -m dmlbook train ...``."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())

"""Command line: ``python -m dmlbook {train,book,data,demo} ...``.

Each sub-command lives in the module that owns it and exposes ``main(argv) -> int``; this file only dispatches,
so that ``python -m dmlbook data list`` never imports the training stack.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("dmlbook.train", "train an embedding: python -m dmlbook train --dataset NAME --loss NAME ..."),
    "book": ("dmlbook.book", "execute the notebooks: python -m dmlbook book [--params ci|default|real|full]"),
    "data": ("dmlbook.data.cli", "datasets: python -m dmlbook data {list,download NAME}"),
    "demo": ("dmlbook.experiments.demo", "a one-minute smoke demo of the core library"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: python -m dmlbook COMMAND [ARGS]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<6} {text}")
        if argv and argv[0] not in {"-h", "--help"}:
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

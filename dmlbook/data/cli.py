"""``python -m dmlbook data {list,download,verify,info}``.

* ``list``: each registered dataset, the folders it is looked for in, and whether it is present.
* ``download NAME [--root DIR] [--url URL] [--sha256 HEX] [--no-verify] [--force] [--quiet]``: fetch from the
  official source (or ``--url``, a mirror folder), verified and atomically put in place.
* ``verify NAME [--root DIR]``: check each present file against its published digest (for a ``.gz`` file with
  another faithful packaging, its decompressed content); exit status 1 if one is missing or damaged.
* ``info NAME``: the dataset's metadata (source, licence, split, training defaults).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .download import download, verify_files
from .errors import DatasetNotFoundError, DownloadError
from .registry import candidate_dirs, dataset_info, dataset_status, list_datasets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dmlbook data", description="dmlbook datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show each dataset, where it is looked for and whether it is present")
    get = sub.add_parser("download", help="download a dataset from its official source")
    get.add_argument("name", help="dataset name (see 'list')")
    get.add_argument("--root", help="dataset folder (default: $DMLBOOK_DATA/<name>)")
    get.add_argument("--url", help="fetch from this folder URL instead (each official file name is appended)")
    get.add_argument("--sha256", help="expected SHA-256 (one-file datasets), overriding the registry's")
    get.add_argument("--no-verify", action="store_true", help="skip the checksum check (prints the SHA-256)")
    get.add_argument("--force", action="store_true", help="replace data that is already present")
    get.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    check = sub.add_parser("verify", help="check the files that are present against the published digests")
    check.add_argument("name")
    check.add_argument("--root", help="dataset folder (default: where 'list' finds it)")
    show = sub.add_parser("info", help="show a dataset's metadata")
    show.add_argument("name")
    return parser


def _list() -> int:
    print(f"{'name':<17} {'status':<8} {'source':<9} where")
    for name in list_datasets():
        info = dataset_info(name)
        present, folder, note = dataset_status(name)
        status = "present" if present else "missing"
        if not info.needs_folder:
            where = note
        elif present:
            where = str(folder)
        else:
            dirs = candidate_dirs(name)
            where = (
                ("looks in " + ", ".join(str(d) for d in dirs)) if dirs else "needs root= (no default folder)"
            )
        print(f"{name:<17} {status:<8} {info.source:<9} {where}")
    return 0


def _verify(name: str, root: str | None) -> int:
    statuses = verify_files(name, root)
    if not statuses:
        print(f"{name}: no published file digests to check (archives are checked when downloaded)")
        return 0
    for s in statuses:
        print(f"{'ok' if s.ok else 'DAMAGED':<8} {s.path}: {s.note}")
    bad = sum(not s.ok for s in statuses)
    if bad:
        print(
            f"{bad} of {len(statuses)} files missing or damaged; replace them with: python -m dmlbook data "
            f"download {name} --force" + (f" --root {root}" if root else ""),
            file=sys.stderr,
        )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error, 2 usage)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        if args.command == "list":
            return _list()
        if args.command == "verify":
            return _verify(args.name, args.root)
        if args.command == "info":
            for key, value in dataclasses.asdict(dataset_info(args.name)).items():
                print(f"{key:<14} {value}")
            return 0
        path = download(
            args.name,
            args.root,
            url=args.url,
            sha256=args.sha256,
            verify=not args.no_verify,
            force=args.force,
            progress=not args.quiet,
        )
        if path is not None:
            print(path)
        return 0
    except (DownloadError, DatasetNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

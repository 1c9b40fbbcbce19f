"""Rebuild the Omniglot copy that ships with dmlbook from the official zips, and check its SHA-256.

    python scripts/build_omniglot_subset.py --root /path/to/omniglot        # exit 0: the same bytes as shipped
    python scripts/build_omniglot_subset.py --out /tmp/omniglot28.npz       # also keep the file built
    python scripts/build_omniglot_subset.py --record                        # maintainers: replace the shipped
                                                                            # file and its SHA256SUMS line

``--root`` is a folder with ``images_background.zip`` and ``images_evaluation.zip`` from
https://github.com/brendenlake/omniglot (folder ``python/``), or their extracted folders; default
``$DMLBOOK_DATA/omniglot``. The build is deterministic (see ``dmlbook/data/embedded/README.md``), so the digest
recorded in ``dmlbook/data/embedded/SHA256SUMS`` is reproduced exactly. When it is not, the script says whether
the decoded images and labels still agree (then only the deflate output differs, e.g. another zlib build).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from dmlbook.data import omniglot
from dmlbook.data.registry import find_root


def _same_content(built: bytes) -> bool:
    """Whether ``built`` decodes to the same images, labels and metadata as the shipped file."""
    new = omniglot.read_embedded(built).dataset
    old = omniglot.read_embedded().dataset
    return (
        bool((new.data == old.data).all())
        and np.array_equal(new.labels, old.labels)
        and np.array_equal(new.class_ids, old.class_ids)
        and new.class_names == old.class_names
        and all(np.array_equal(new.meta[k], old.meta[k]) for k in old.meta)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="folder with the official zips (default: $DMLBOOK_DATA/omniglot)")
    parser.add_argument("--out", help="also write the built file here")
    parser.add_argument(
        "--record",
        action="store_true",
        help="replace the shipped file and its SHA256SUMS line with the build",
    )
    args = parser.parse_args(argv)
    root = find_root("omniglot", args.root)
    start = time.perf_counter()
    built = omniglot.build_embedded(root)
    digest = hashlib.sha256(built).hexdigest()
    print(f"built from {root} in {time.perf_counter() - start:.1f} s: {len(built):,} bytes, SHA-256 {digest}")
    if args.out:
        Path(args.out).write_bytes(built)
        print(f"wrote {args.out}")
    folder = Path(omniglot.__file__).parent / "embedded"
    if args.record:
        (folder / omniglot.EMBEDDED_FILE).write_bytes(built)
        (folder / "SHA256SUMS").write_text(f"{digest}  {omniglot.EMBEDDED_FILE}\n", encoding="utf-8")
        print(f"recorded in {folder}")
        return 0
    expected = omniglot.embedded_sha256()
    if digest == expected:
        print(f"OK: matches the recorded SHA-256 ({folder / 'SHA256SUMS'})")
        return 0
    same = _same_content(built)
    print(
        f"MISMATCH: the recorded SHA-256 is {expected}; the decoded images and labels "
        + ("are identical, so only the compressed bytes differ (another zlib build?)" if same else "DIFFER"),
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

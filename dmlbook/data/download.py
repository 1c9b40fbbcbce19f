"""Explicit downloads from the official sources: ``python -m dmlbook data download NAME [--root DIR]``.

Every file is streamed to a temporary file next to its destination, checked against its published SHA-256
(or, where only that is published, MD5), and only then moved into place with an atomic rename; archives are
unpacked into a temporary folder that is renamed into place once complete. A failed, truncated or mismatched
transfer therefore leaves nothing behind. A file whose checksum is unknown is refused unless ``verify=False``
(``--no-verify``), which prints the SHA-256 of what was received so it can be recorded.

What is already present is verified too (:func:`verify_files`, ``python -m dmlbook data verify NAME``): a file
counts as present only when its digest matches, or, for a ``.gz`` file with more than one faithful packaging (the
same content compressed differently, e.g. Fashion-MNIST from Zalando's server and from Debian's
``dataset-fashion-mnist``), when its decompressed content does. A damaged file is fetched again.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._optional import require
from .errors import ChecksumMismatchError, DamagedFileError, DownloadError
from .info import RemoteFile
from .registry import _call, _entry, data_home, find_root

__all__ = [
    "CONTENT_SHA256",
    "DamagedFileError",
    "FileStatus",
    "download",
    "extract",
    "fetch",
    "file_status",
    "gunzip_sha256",
    "verify_files",
]

_CHUNK = 1 << 20

#: SHA-256 of the decompressed bytes of ``.gz`` files that exist in more than one faithful packaging, by dataset
#: and file name. Fashion-MNIST's IDX files: the ``.gz`` bytes of Zalando's release and of Debian's
#: ``dataset-fashion-mnist`` differ, their content does not (these are the digests of the raw IDX files, whose
#: MD5s torchvision's MNIST-style loaders check).
CONTENT_SHA256: dict[str, dict[str, str]] = {
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}


@dataclass(frozen=True)
class FileStatus:
    """What :func:`verify_files` found for one official file: ``ok`` and a one-line ``note`` saying why."""

    filename: str
    path: Path
    ok: bool
    note: str


def _digests(path: Path) -> tuple[str, str]:
    """SHA-256 and MD5 of a file's bytes."""
    h256, h5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h256.update(chunk)
            h5.update(chunk)
    return h256.hexdigest(), h5.hexdigest()


def _gunzip(path: Path) -> tuple[str | None, str]:
    """``(SHA-256 of the decompressed bytes, "")``, or ``(None, what is wrong)``. gzip checks the stored CRC-32
    and length, so truncation and corruption are both caught."""
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except EOFError:
        return None, f"truncated: its compressed stream ends early ({path.stat().st_size} bytes)"
    except (gzip.BadGzipFile, zlib.error) as err:
        return None, f"not a valid gzip file ({err})"
    return h.hexdigest(), ""


def gunzip_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a ``.gz`` file's decompressed bytes, streamed; a truncated or corrupt file raises
    :class:`DamagedFileError` naming it (never a bare ``EOFError``)."""
    digest, problem = _gunzip(Path(path))
    if digest is None:
        raise DamagedFileError(f"{path} is {problem}", path=Path(path))
    return digest


def file_status(
    path: str | os.PathLike, remote: RemoteFile, *, content_sha256: str | None = None
) -> FileStatus:
    """Check one present file against its published digest (``remote.sha256``, else ``remote.md5``) and, for a
    ``.gz`` file, against the digest of its decompressed content; the uncompressed form of a ``.gz`` file is
    checked against ``content_sha256``."""
    path = Path(path)
    name = remote.filename
    if not path.is_file():
        plain = path.with_name(name.removesuffix(".gz"))
        if name.endswith(".gz") and plain.is_file():  # loaders also read the uncompressed file
            if content_sha256 is None:
                return FileStatus(name, plain, True, "present uncompressed (no digest known to check it)")
            got = _digests(plain)[0]
            ok = got == content_sha256.lower()
            return FileStatus(
                name,
                plain,
                ok,
                "uncompressed, content matches the published data"
                if ok
                else f"uncompressed, SHA-256 {got} is not the published data's ({content_sha256})",
            )
        return FileStatus(name, path, False, "missing")
    expected = (remote.sha256 or remote.md5 or "").lower()
    if expected:
        sha, md5 = _digests(path)
        if (sha if remote.sha256 else md5) == expected:
            return FileStatus(
                name, path, True, f"matches the published {'SHA-256' if remote.sha256 else 'MD5'}"
            )
    if name.endswith(".gz"):
        content, problem = _gunzip(path)
        if content is None:
            return FileStatus(name, path, False, problem)
        if content_sha256 is not None:
            ok = content == content_sha256.lower()
            note = (
                "another packaging of the same content (decompressed SHA-256 matches)"
                if ok
                else f"decompressed SHA-256 {content} is not the published data's"
            )
            return FileStatus(name, path, ok, note)
        if not expected:
            return FileStatus(name, path, True, "decompresses cleanly (no digest known)")
    if expected:
        kind = "SHA-256" if remote.sha256 else "MD5"
        return FileStatus(
            name,
            path,
            False,
            f"{kind} differs from the published one ({expected}); {path.stat().st_size} bytes",
        )
    return FileStatus(name, path, True, "present (no digest known)")


def _statuses(name: str, folder: Path, files: Sequence[RemoteFile]) -> list[FileStatus]:
    content = CONTENT_SHA256.get(name, {})
    return [
        file_status(folder / f.filename, f, content_sha256=content.get(f.filename))
        for f in files
        if not f.extract
    ]


def verify_files(name: str, root: str | os.PathLike | None = None) -> list[FileStatus]:
    """Check the files of dataset ``name`` found in ``root`` (default: where it is found) against the published
    digests; archives that were unpacked are not re-checked. Raises DatasetNotFoundError when it is absent."""
    info = _entry(name).info
    folder = find_root(info.name, root) if info.needs_folder else None
    return [] if folder is None else _statuses(info.name, folder, info.files)


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    verify: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> str:
    """Download ``url`` to ``dest`` atomically and return the SHA-256 of the bytes received.

    With ``verify`` the digest must match ``sha256`` (else ``md5``); with neither known the download is refused
    before it starts. Raises :class:`DownloadError` (network error, HTTP error, fewer bytes than announced) or
    :class:`ChecksumMismatchError`; in every failure case ``dest`` is untouched and no temporary file remains.
    """
    dest = Path(dest)
    if verify and not (sha256 or md5):
        raise DownloadError(
            f"no published checksum for {dest.name}; refusing to download it unverified. "
            "Re-run with verify=False (--no-verify) to accept it; its SHA-256 will be printed."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    h256, h5, received = hashlib.sha256(), hashlib.md5(), 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = None
            if progress:
                bar = require("tqdm", "the download progress bar").tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr, leave=False
                )
            try:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    h256.update(chunk)
                    h5.update(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        if total is not None and received != total:
            raise DownloadError(f"{url}: transfer truncated, received {received} of {total} bytes")
        got = h256.hexdigest()
        if verify:
            expected, actual, kind = (sha256, got, "SHA-256") if sha256 else (md5, h5.hexdigest(), "MD5")
            if actual.lower() != expected.lower():
                raise ChecksumMismatchError(
                    f"{url}: {kind} mismatch (expected {expected}, got {actual}; "
                    f"{received} bytes); the file was discarded"
                )
        os.replace(tmp, dest)
        return got
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DownloadError(f"downloading {url} failed: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)


def _safe_members(names: list[str], archive: Path) -> None:
    for name in names:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise DownloadError(f"{archive.name}: refusing to unpack the unsafe path {name!r}")


def _unpack(archive: Path, into: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _safe_members(z.namelist(), archive)
                z.extractall(into)
            return
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter="data")
            else:  # Python < 3.11.4: check paths ourselves and skip links and devices
                members = [m for m in t.getmembers() if m.isfile() or m.isdir()]
                _safe_members([m.name for m in members], archive)
                t.extractall(into, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise DownloadError(f"{archive.name} could not be unpacked: {err}") from err


def extract(
    archive: str | os.PathLike, dest: str | os.PathLike, *, strip: str | None = None, force: bool = False
) -> Path:
    """Unpack ``archive`` so that its contents (those of its ``strip`` folder, if it has one) become ``dest``.

    Unpacks into a temporary folder next to ``dest`` and renames it into place; an existing non-empty ``dest``
    is replaced only with ``force``.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise DownloadError(
            f"{dest} already exists and is not empty; pass force=True (--force) to replace it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=dest.parent))
    try:
        _unpack(archive, tmp)
        src = tmp / strip if strip and (tmp / strip).is_dir() else tmp
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            dest.rename(old)
        os.replace(src, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    sha256: str | Mapping[str, str] | None = None,
    verify: bool = True,
    force: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path | None:
    """Download dataset ``name`` into ``root`` (default ``$DMLBOOK_DATA/<first folder name>``) and return it.

    Args:
        url: fetch from here instead of the official source: a folder URL to which each official file name is
            appended (a mirror, or a local test server).
        sha256: expected digest(s) overriding the registry's: a string for a one-file dataset or
            ``{file name: digest}``.
        verify: check digests (files without a known digest are refused); ``False`` skips the check.
        force: replace data that is already there. progress: show a tqdm bar and messages on stderr.

    Returns None for data that needs no download (synthetic, digits); raises :class:`DownloadError` for datasets
    that need a manual step (the message says which).
    """
    entry = _entry(name)
    info, quiet = entry.info, not progress
    if info.source in {"generated", "package"}:
        what = "generated" if info.source == "generated" else "ships with a package"
        _say(f"{info.name}: nothing to download ({what})", quiet)
        return None
    if info.source != "download" or not info.files:
        raise DownloadError(f"{info.name} cannot be downloaded automatically.\n{info.how_to_get()}")
    if isinstance(sha256, str):
        if len(info.files) != 1:
            raise ValueError(
                f"sha256 for {info.name} must be a mapping {{file name: digest}} (it has "
                f"{len(info.files)} files)"
            )
        sha256 = {info.files[0].filename: sha256}
    overrides = dict(sha256 or {})
    files = [
        RemoteFile(
            f"{url.rstrip('/')}/{f.filename}" if url else f.url,
            f.filename,
            sha256=overrides.get(f.filename, f.sha256),
            md5=None if f.filename in overrides else f.md5,
            extract=f.extract,
            strip=f.strip,
        )
        for f in info.files
    ]
    unknown = [f.filename for f in files if not (f.sha256 or f.md5)]
    if verify and unknown:
        raise DownloadError(
            f"{info.name}: no published checksum for {', '.join(unknown)}; refusing to download "
            "unverified data. Re-run with --no-verify (verify=False) to accept it; the SHA-256 of "
            "what was received is printed so you can record it."
        )
    target = Path(root).expanduser() if root is not None else data_home() / info.folders[0]
    damaged: dict[str, str] = {}
    if not force and target.exists() and _call(entry.check, target) is None:
        statuses = _statuses(info.name, target, files) if verify else []
        damaged = {s.filename: f"{s.path} is damaged: {s.note}" for s in statuses if not s.ok}
        if not damaged:
            checked = f" ({len(statuses)} files verified)" if statuses else ""
            _say(f"{info.name}: already present in {target}{checked}", quiet)
            return target
        for message in damaged.values():
            _say(f"{info.name}: {message}; fetching it again", quiet)
    for f in files:
        if not f.extract and (target / f.filename).is_file() and not force and f.filename not in damaged:
            continue
        _say(f"{info.name}: {f.url} -> {target}", quiet)
        if not f.extract:
            try:
                got = fetch(
                    f.url,
                    target / f.filename,
                    sha256=f.sha256,
                    md5=f.md5,
                    verify=verify,
                    progress=progress,
                    timeout=timeout,
                )
            except DownloadError as err:
                if f.filename not in damaged:
                    raise
                raise type(err)(f"{damaged[f.filename]}, and fetching a fresh copy failed: {err}") from err
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{f.filename}.", suffix=".download", dir=target.parent))
            try:
                got = fetch(
                    f.url,
                    scratch / f.filename,
                    sha256=f.sha256,
                    md5=f.md5,
                    verify=verify,
                    progress=progress,
                    timeout=timeout,
                )
                extract(scratch / f.filename, target, strip=f.strip, force=force)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        if not verify:
            _say(f"{info.name}: SHA-256 of {f.filename} (not verified): {got}", quiet)
    missing = _call(entry.check, target)
    if missing is not None:
        raise DownloadError(
            f"{info.name}: downloaded into {target}, but {missing!r} is still missing; the "
            "archive does not have the expected layout (see data/README.md)"
        )
    _say(f"{info.name}: ready in {target}", quiet)
    return target

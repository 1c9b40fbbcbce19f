"""A run's output folder: checked before training, held by one run at a time, written atomically.

* :func:`prepare_output` creates the folder and proves that a file can be written there, so that a read-only or
  misnamed ``--out`` fails before the first step instead of after the first epoch.
* :class:`OutputLock` is ``OUT/.lock`` (``{"pid", "host", "started"}``): a second run on the same folder is
  refused with a message that names the first one; a lock left by a process that no longer exists (on this host)
  is taken over.
* :func:`atomic_write` writes every file of the folder (checkpoint, ``metrics.json``, ``history.json``): a unique
  temporary file in the same folder, ``fsync``, then ``os.replace`` — a reader sees the old file or the new one,
  never half of one, and two writers never share a temporary name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

from .config import ConfigError

LOCK_NAME = ".lock"

#: An unreadable lock file younger than this may be one that its run is still writing: not taken over.
_FRESH_SECONDS = 10.0


class OutputBusyError(RuntimeError):
    """The output folder is held by another run (its ``.lock`` names the process)."""


class OutputError(OSError):
    """Writing one of a run's files failed; the message names the file (``errno`` is the system's)."""


def _output_error(err: OSError, message: str) -> OutputError:
    out = OutputError(f"{message}: {err.strerror or err}")
    out.errno = err.errno
    return out


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened or synced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 less the process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(binary_file)`` into a unique temporary file beside it, then replace it.

    An ``OSError`` (disk full, folder gone) is re-raised naming ``path``; the previous file, if any, is kept.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _output_error(err, f"cannot write {path}") from None
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes the file private (0o600)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise _output_error(err, f"cannot write {path}") from None
        raise
    _fsync_dir(path.parent)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """:func:`atomic_write` of ``value`` as indented JSON with a final newline."""
    write_text(path, json.dumps(value, indent=2) + "\n")


def prepare_output(out: str | os.PathLike[str]) -> Path:
    """Create the output folder ``out`` if needed and check that files can be written in it.

    Raises :class:`~dmlbook.train.config.ConfigError` (field ``out``) naming the path when ``out`` is an existing
    file, lies below a file, or cannot be created or written (a read-only file system, no permission).
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"out={str(folder)!r} is an existing file, not a folder; choose a folder for the run's files",
            field="out",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create the output folder {str(folder)!r}: {err.strerror or err}"
            + (f" ({err.filename})" if err.filename and str(err.filename) != str(folder) else ""),
            field="out",
        ) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"the output folder {str(folder)!r} is not writable: {err.strerror or err}; choose another --out",
            field="out",
        ) from None
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to someone else
        return True
    return True


class OutputLock:
    """``OUT/.lock`` held for the length of one run (a context manager).

    ``acquire`` creates the file exclusively with this process's ``{"pid", "host", "started"}``. If it exists,
    the run is refused with :class:`OutputBusyError` naming the holder, unless the holder is gone: a process of
    this host that no longer exists, or a lock file that cannot be read and is older than a few seconds (a run
    killed while writing it). ``release`` removes the file if it is still this process's.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def _read(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and isinstance(value.get("pid"), int) else None

    def _stale(self, holder: dict[str, Any] | None) -> bool:
        if holder is None:
            with contextlib.suppress(OSError):
                return time.time() - self.path.stat().st_mtime > _FRESH_SECONDS
            return True  # removed meanwhile
        return holder.get("host") == socket.gethostname() and not _pid_alive(holder["pid"])

    def acquire(self) -> Self:
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        for _ in range(2):  # the second try follows the removal of a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._read()
                if not self._stale(holder):
                    who = (
                        (
                            f"process {holder['pid']} on {holder.get('host', '?')}, started "
                            f"{holder.get('started', '?')}"
                        )
                        if holder
                        else "a run that is starting"
                    )
                    raise OutputBusyError(
                        f"the output folder {str(self.path.parent)!r} is in use by another run ({who}); wait for "
                        f"it to finish or choose another --out (if that process is gone, delete {self.path})"
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            except OSError as err:
                raise _output_error(err, f"cannot create the lock file {self.path}") from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
            self.held = True
            return self
        raise OutputBusyError(f"could not take over the stale lock {self.path}; delete it and run again")

    def release(self) -> None:
        if self.held:
            holder = self._read()
            if holder is not None and holder.get("pid") == os.getpid():
                with contextlib.suppress(OSError):
                    self.path.unlink()
            self.held = False

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

"""Errors raised by the data package."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's folder, or a file in it, is missing.

    Attributes: ``dataset`` (registry name), ``folder`` (the folder that was checked), ``missing`` (the file or
    sub-folder that was expected there). The message also says where to obtain the dataset.
    """

    def __init__(self, message: str, *, dataset: str = "", folder: Path | None = None, missing: str = ""):
        super().__init__(message)
        self.dataset, self.folder, self.missing = dataset, folder, missing

    def __str__(self) -> str:  # OSError would otherwise format (errno, strerror)
        return str(self.args[0])


class DamagedFileError(ValueError):
    """A data file is present but cannot be read: truncated, corrupt, or not the published data.

    ``path``: the (first) damaged file. The message names every damaged file found, what is wrong with it and
    how to replace it.
    """

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class DownloadError(RuntimeError):
    """A download failed (network error, truncated transfer, unusable archive) or needs a manual step."""


class ChecksumMismatchError(DownloadError):
    """The downloaded bytes do not have the expected SHA-256 (or MD5) digest; nothing was kept."""


def not_found(
    dataset: str, folder: Path, missing: str, *, where: str, looked: Sequence[Path] = ()
) -> DatasetNotFoundError:
    """Build the standard message: which folder, what is missing, where else we looked, how to get the data."""
    if Path(folder).exists():
        lines = [f"dataset {dataset!r}: {missing!r} not found in {folder}"]
    else:
        lines = [f"dataset {dataset!r}: folder {folder} does not exist (it should contain {missing!r})"]
    others = [str(p) for p in looked if Path(p) != Path(folder)]
    if others:
        lines.append("also looked in: " + ", ".join(others))
    lines.append(where)
    return DatasetNotFoundError("\n".join(lines), dataset=dataset, folder=Path(folder), missing=missing)

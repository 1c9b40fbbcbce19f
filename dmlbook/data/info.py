"""Plain metadata about each registered dataset: where it comes from and sensible training defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset's official distribution.

    ``sha256``/``md5``: the published digests (``None`` when unknown; downloading then needs ``verify=False``).
    ``extract``: unpack the archive into the dataset folder; ``strip``: the archive's top folder whose contents
    become the dataset folder (e.g. ``CUB_200_2011``).
    """

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    extract: bool = False
    strip: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """What a training script needs to know about a dataset before loading it.

    ``input_kind``: ``"features"`` (a vector per sample), ``"image"`` (RGB, decoded lazily), ``"gray28"``
    (1x28x28 in [0, 1]), ``"gray8"`` (1x8x8 in [0, 1]) or ``"points"``/``"gray"`` (synthetic; shape set by its
    arguments). ``input_shape``: the shape of one ``x`` with the default transform (``None``: depends on the
    arguments or the file). ``embedding_dim``, ``batch_p``, ``batch_k``: suggested defaults (clamp P to the
    number of training classes). ``folders``: candidate folder names under ``$DMLBOOK_DATA``; ``system_dirs``:
    absolute folders also searched (e.g. a Debian package). ``source``: ``"generated"``, ``"package"``
    (ships with dmlbook, e.g. ``omniglot_embedded``, or with a dependency), ``"download"``
    (``python -m dmlbook data download NAME`` works) or ``"manual"``.
    """

    name: str
    title: str
    input_kind: str
    input_shape: tuple[int, ...] | None
    num_classes: int | None
    split: str
    embedding_dim: int
    batch_p: int
    batch_k: int
    source: str
    url: str = ""
    license: str = ""
    citation: str = ""
    folders: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    files: tuple[RemoteFile, ...] = ()
    manual: str = ""
    image_size: int | None = None

    @property
    def needs_folder(self) -> bool:
        """Whether the data is read from a folder (False for generated and package data)."""
        return self.source in {"download", "manual"}

    def how_to_get(self) -> str:
        """One paragraph: the official source and the command (or manual step) that puts the data in place."""
        text = f"Official source: {self.url}" if self.url else ""
        if self.source == "download":
            text += f"\nGet it with: python -m dmlbook data download {self.name} [--root DIR]"
        if self.manual:
            text += f"\n{self.manual}"
        return text.strip() + "\nSee data/README.md for the folder layout; set DMLBOOK_DATA or pass root=."

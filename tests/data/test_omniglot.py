"""Omniglot: the official layout (zips or folders) on tiny generated data, the PNG decoder, exact downsampling,
alphabet-disjoint validation, errors naming the damaged file, the embedded copy, and the real data."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlbook.data import DatasetNotFoundError, load_dataset
from dmlbook.data import omniglot as om
from dmlbook.data.download import DamagedFileError

PIL = pytest.importorskip("PIL.Image")

# background: 5 alphabets x 2 characters, evaluation: 2 alphabets x 2 characters; 3 drawers each
BACKGROUND = {"Alpha": (1, 2), "Beta": (3, 4), "Gamma": (5, 6), "Delta": (7, 8), "Epsilon": (9, 10)}
EVALUATION = {"Zeta": (11, 12), "Eta": (13, 14)}
DRAWERS = (1, 2, 3)


def ink_image(class_id: int, drawer: int) -> np.ndarray:
    """A (105, 105) bool ink mask that differs by character and drawer: a block and a diagonal stroke."""
    ink = np.zeros((105, 105), bool)
    top = 4 * class_id
    ink[top : top + 20, 10 + drawer : 40 + drawer] = True
    rows = np.arange(105)
    ink[rows, (rows + 7 * drawer) % 105] = True
    return ink


def png_1bit(ink: np.ndarray, filters: list[int] | None = None) -> bytes:
    """A 1-bit grey PNG of ``ink`` (black = ink) with the given scanline filter per row (default: cycle 0-4)."""
    rows = np.packbits(~ink, axis=1).astype(np.int16)  # (105, 14), 1 = white
    filters = filters or [r % 5 for r in range(len(rows))]
    out, prev = [], np.zeros(rows.shape[1], np.int16)
    for kind, row in zip(filters, rows):
        left = np.concatenate([[0], row[:-1]])
        up_left = np.concatenate([[0], prev[:-1]])
        if kind == 4:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        else:
            pred = [np.zeros_like(row), left, prev, (left + prev) // 2][kind]
        out.append(bytes([kind]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", ink.shape[1], ink.shape[0], 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(out)))
        + chunk(b"IEND", b"")
    )


def png_pil(ink: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    PIL.fromarray(np.where(ink, 0, 255).astype(np.uint8)).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def official_files() -> dict[str, bytes]:
    """Relative path -> PNG bytes in the official layout; a few files are 8-bit grey or RGB (Pillow path)."""
    files = {}
    for part, alphabets in (("background", BACKGROUND), ("evaluation", EVALUATION)):
        for alphabet, ids in alphabets.items():
            for n, class_id in enumerate(ids, start=1):
                for drawer in DRAWERS:
                    ink = ink_image(class_id, drawer)
                    blob = (
                        png_pil(ink, {1: "1", 2: "L"}.get(drawer, "RGB")) if class_id == 3 else png_1bit(ink)
                    )
                    files[f"images_{part}/{alphabet}/character{n:02d}/{class_id:04d}_{drawer:02d}.png"] = blob
    return files


def write_zips(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part in om.PARTS:
        with zipfile.ZipFile(folder / f"images_{part}.zip", "w") as archive:  # stored, as the official zips
            archive.writestr(f"images_{part}/", b"")
            for name, blob in sorted(files.items()):
                if name.startswith(f"images_{part}/"):
                    archive.writestr(name, blob)
    return folder


def write_folders(folder: Path, files: dict[str, bytes]) -> Path:
    for name, blob in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(blob)
    return folder


@pytest.fixture
def zips(tmp_path: Path) -> Path:
    return write_zips(tmp_path / "omniglot", official_files())


# ------------------------------------------------------------------------------------------------ decoding
def test_decoder_undoes_every_png_filter_and_matches_pillow():
    masks = [ink_image(c, d) for c in (1, 5, 9) for d in DRAWERS]
    rng = np.random.default_rng(0)
    masks.append(rng.random((105, 105)) < 0.5)  # noise: Paeth and Average see every case
    blobs = [png_1bit(m, [int(f) for f in rng.integers(0, 5, 105)]) for m in masks]
    blobs += [png_pil(m, "1") for m in masks] + [png_pil(m, "L") for m in masks[:2]]
    names = [f"f{i}.png" for i in range(len(blobs))]
    decoded = om.decode_ink(blobs, names, "test")
    reference = np.stack([np.asarray(PIL.open(io.BytesIO(b)).convert("L")) < 128 for b in blobs])
    np.testing.assert_array_equal(decoded, reference)
    np.testing.assert_array_equal(decoded[: len(masks)], np.stack(masks))


@pytest.mark.parametrize("size", [28, 32, 7, 1])
def test_downsample_is_exact_area_coverage(size):
    rng = np.random.default_rng(size)
    ink = rng.random((2, 105, 105)) < 0.3
    fine = np.kron(ink, np.ones((size, size), bool))  # (2, 105 s, 105 s): each pixel as s x s sub-pixels
    covered = fine.reshape(2, size, 105, size, 105).sum(
        (2, 4), dtype=np.int64
    )  # ink sub-pixels per output pixel
    grey = om.downsample(ink, image_size=size, binarize=False)
    np.testing.assert_array_equal(grey, (255 * covered + 11025 // 2) // 11025)
    np.testing.assert_array_equal(om.downsample(ink, image_size=size), np.where(4 * covered >= 11025, 255, 0))
    np.testing.assert_array_equal(
        om.downsample(ink, image_size=105), np.where(ink, 255, 0)
    )  # full size: as is


def test_downsample_bad_input():
    with pytest.raises(ValueError, match="image_size"):
        om.downsample(np.zeros((1, 105, 105), bool), image_size=106)
    with pytest.raises(ValueError, match="bool array"):
        om.downsample(np.zeros((1, 28, 28), bool))
    with pytest.raises(TypeError, match="binarize"):
        om.downsample(np.zeros((1, 105, 105), bool), binarize=1)


# ------------------------------------------------------------------------------------------------ loader
def test_loader_reads_the_official_layout(zips):
    ds = load_dataset("omniglot", root=zips, split="all")
    n_bg, n_ev = 2 * len(BACKGROUND) * len(DRAWERS), 2 * len(EVALUATION) * len(DRAWERS)
    assert len(ds) == n_bg + n_ev and ds.num_classes == 14
    assert ds.class_ids.tolist() == list(range(1, 15))
    assert ds.class_names[2] == "Beta/character01" and om.class_alphabets(ds)[12] == "Eta"
    assert ds.data.dtype == torch.uint8 and ds.data.shape[1:] == (1, 28, 28)
    assert (ds.meta["part"] == "background").sum() == n_bg
    # ink is 1: each image equals its own mask downsampled (strokes black in the PNG -> 1 here)
    ids, drawers = ds.class_ids[ds.labels], ds.meta["drawer"]
    expected = om.downsample(np.stack([ink_image(int(c), int(d)) for c, d in zip(ids, drawers)]))
    np.testing.assert_array_equal(ds.data[:, 0].numpy(), expected)
    x, _ = ds[0]
    assert x.dtype == torch.float32 and set(x.unique().tolist()) == {0.0, 1.0}
    assert float(x.mean()) < 0.5  # mostly background


def test_zip_and_folder_layouts_agree(tmp_path, zips):
    folder = write_folders(tmp_path / "extracted", official_files())
    a = load_dataset("omniglot", root=zips, split="all", image_size=20, binarize=False)
    b = load_dataset("omniglot", root=folder, split="all", image_size=20, binarize=False)
    assert (
        torch.equal(a.data, b.data) and np.array_equal(a.labels, b.labels) and a.class_names == b.class_names
    )
    assert a.data.shape[1:] == (1, 20, 20) and len(a.data.unique()) > 2  # grey levels
    python = write_zips(tmp_path / "clone" / "python", official_files()).parent  # a clone of the repository
    assert torch.equal(
        load_dataset("omniglot", root=python, split="all", image_size=20, binarize=False).data, a.data
    )


def test_test_split_is_the_evaluation_characters(zips):
    train = load_dataset("omniglot", root=zips, split="train", val_fraction=0)
    test = load_dataset("omniglot", root=zips, split="test")
    assert set(test.meta["alphabet"]) == set(EVALUATION) and set(train.meta["alphabet"]) == set(BACKGROUND)
    assert not set(train.class_ids) & set(test.class_ids)
    assert test.num_classes == 4 and test.labels.max() == 3  # renumbered


def test_val_holds_out_whole_alphabets_by_seed(zips):
    chosen = []
    for seed in range(6):
        train = load_dataset("omniglot", root=zips, split="train", val_fraction=0.4, seed=seed)
        val = load_dataset("omniglot", root=zips, split="val", val_fraction=0.4, seed=seed)
        val_alphabets = set(val.meta["alphabet"])
        assert len(val_alphabets) == 2 and not val_alphabets & set(train.meta["alphabet"])
        assert len(val) == 2 * 2 * len(DRAWERS) and len(train) + len(val) == 2 * len(BACKGROUND) * len(
            DRAWERS
        )
        again = load_dataset("omniglot", root=zips, split="val", val_fraction=0.4, seed=seed)
        assert np.array_equal(again.class_ids, val.class_ids)
        chosen.append(frozenset(val_alphabets))
    assert len(set(chosen)) > 1  # the seed matters


def test_missing_file_names_it_and_the_source(tmp_path, zips):
    (zips / "images_evaluation.zip").unlink()
    with pytest.raises(DatasetNotFoundError, match="images_evaluation.zip") as err:
        load_dataset("omniglot", root=zips)
    assert "brendenlake/omniglot" in str(err.value) and "python/" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="images_background.zip"):
        load_dataset("omniglot", root=tmp_path / "nowhere")


def test_truncated_zip_names_the_zip(zips):
    path = zips / "images_background.zip"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DamagedFileError, match="images_background.zip") as err:
        load_dataset("omniglot", root=zips)
    assert "brendenlake/omniglot" in str(err.value) and err.value.path == path


def test_corrupt_member_names_the_image(zips):
    path = zips / "images_evaluation.zip"
    blob = bytearray(path.read_bytes())
    name = b"images_evaluation/Eta/character02/0014_02.png"
    at = blob.index(name) + len(name) + 40  # inside that stored PNG's bytes
    blob[at] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DamagedFileError, match="0014_02.png") as err:
        load_dataset("omniglot", root=zips)
    assert "images_evaluation.zip" in str(err.value) and "brendenlake/omniglot" in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "resize"])
def test_damaged_png_in_a_folder_names_the_file(tmp_path, damage):
    files = official_files()
    name = "images_background/Gamma/character02/0006_03.png"
    files[name] = files[name][:60] if damage == "truncate" else png_pil(np.zeros((100, 100), bool), "L")
    folder = write_folders(tmp_path / "extracted", files)
    with pytest.raises(DamagedFileError, match="0006_03.png") as err:
        load_dataset("omniglot", root=folder)
    assert ("truncated" if damage == "truncate" else "105x105") in str(err.value)


def test_bad_arguments(zips):
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("omniglot", root=zips, image_size=0)
    with pytest.raises(TypeError, match="binarize"):
        load_dataset("omniglot", root=zips, binarize="yes")


# ------------------------------------------------------------------------------------------------ embedded copy
def test_build_is_deterministic_and_reads_back(tmp_path, zips):
    folder = write_folders(tmp_path / "extracted", official_files())
    built = om.build_embedded(zips)
    assert built == om.build_embedded(zips) == om.build_embedded(folder)
    with zipfile.ZipFile(io.BytesIO(built)) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    back = om.read_embedded(built)
    full = om.load(zips)
    assert (
        torch.equal(back.dataset.data, full.dataset.data)
        and back.dataset.class_names == full.dataset.class_names
    )
    assert np.array_equal(back.train, full.train) and np.array_equal(back.groups, full.groups)
    for key in full.dataset.meta:
        assert np.array_equal(back.dataset.meta[key], full.dataset.meta[key])


def test_embedded_loads_offline_and_matches_its_record(tmp_path, monkeypatch):
    monkeypatch.delenv("DMLBOOK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data either
    blob = om.embedded_path().read_bytes()
    assert len(blob) <= 3 * 2**20
    assert hashlib.sha256(blob).hexdigest() == om.embedded_sha256()
    record = Path(om.__file__).parent / "embedded" / "SHA256SUMS"
    assert record.read_text().split() == [om.embedded_sha256(), om.EMBEDDED_FILE]
    all_ = load_dataset("omniglot_embedded", split="all")
    assert len(all_) == 32460 and all_.num_classes == 1623 and all_.data.shape[1:] == (1, 28, 28)
    assert np.array_equal(all_.class_counts(), np.full(1623, 20))
    test = load_dataset("omniglot_embedded", split="test")
    train = load_dataset("omniglot_embedded", split="train", val_fraction=0)
    assert (train.num_classes, test.num_classes, len(train), len(test)) == (964, 659, 19280, 13180)
    assert len(set(train.meta["alphabet"])) == 30 and len(set(test.meta["alphabet"])) == 20
    val = load_dataset("omniglot_embedded", split="val", val_fraction=0.2, seed=3)
    assert len(set(val.meta["alphabet"])) == 6 and not set(val.meta["alphabet"]) & set(
        load_dataset("omniglot_embedded", split="train", val_fraction=0.2, seed=3).meta["alphabet"]
    )
    for folder in (Path(om.__file__).parent / "embedded",):
        assert "Permission is hereby granted" in (folder / "LICENSE").read_text()
        assert "Science" in (folder / "README.md").read_text()


def test_embedded_refuses_other_settings_and_damage(monkeypatch):
    with pytest.raises(ValueError, match="image_size=32"):
        load_dataset("omniglot_embedded", image_size=32)
    with pytest.raises(ValueError, match="load_dataset\\('omniglot'"):
        load_dataset("omniglot_embedded", binarize=False)
    monkeypatch.setattr(om, "embedded_sha256", lambda: "0" * 64)
    with pytest.raises(DamagedFileError, match="SHA-256"):
        load_dataset("omniglot_embedded")


# ------------------------------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_real_omniglot(real_data):
    root = real_data / "omniglot"
    if not root.is_dir():
        pytest.skip(f"{root} is missing")
    train = load_dataset("omniglot", root=root, split="train", val_fraction=0)
    test = load_dataset("omniglot", root=root, split="test")
    assert (train.num_classes, test.num_classes, len(train), len(test)) == (964, 659, 19280, 13180)
    assert len(set(train.meta["alphabet"])) == 30 and len(set(test.meta["alphabet"])) == 20
    assert test.class_ids.min() == 965 and train.class_ids.max() == 964
    val = load_dataset("omniglot", root=root, split="val", seed=0)
    assert len(set(val.meta["alphabet"])) == 6
    full = load_dataset("omniglot", root=root, split="all")
    embedded = load_dataset("omniglot_embedded", split="all")
    assert torch.equal(full.data, embedded.data) and full.class_names == embedded.class_names
    assert hashlib.sha256(om.build_embedded(root)).hexdigest() == om.embedded_sha256()

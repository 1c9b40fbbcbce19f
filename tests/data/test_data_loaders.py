"""Each loader on a tiny fabricated tree in the official layout, plus the registry and its errors."""

import gzip

import numpy as np
import pytest
import torch
from support import assert_damaged_image_is_named

from dmlbook.data import (
    DatasetInfo,
    DatasetNotFoundError,
    ImageDataset,
    dataset_info,
    dataset_status,
    find_root,
    list_datasets,
    load_dataset,
)
from dmlbook.data import transforms as T
from dmlbook.data.fashion_mnist import read_idx

NAMES = [
    "synthetic",
    "digits",
    "fashion_mnist",
    "cars196",
    "cars196_features",
    "cub200",
    "sop",
    "folder",
    "features",
]
NAMES += ["ucmerced_features"]  # registry.py, after "features" (issue 7)
NAMES += ["fsdd", "isic2016", "ph2"]  # data/__init__.py, in that order (issue 7: fsdd, then dermoscopy)
NAMES += ["omniglot", "omniglot_embedded"]  # registry.py (issue 15)


def test_registry_names_and_info():
    assert list_datasets() == NAMES
    for name in NAMES:
        info = dataset_info(name)
        assert isinstance(info, DatasetInfo) and info.name == name
        assert info.input_kind in {"features", "image", "gray28", "gray8", "points", "logmel"}
        assert info.embedding_dim > 0 and info.batch_p >= 1 and info.batch_k >= 2
    assert dataset_info("cars196").split == "classes 1-98 train, 99-196 test"
    assert dataset_info("Fashion-MNIST").name == "fashion_mnist"


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="'cars196'.*got 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        load_dataset("digits", split="validation")


def test_fashion_mnist_layout(fake_fashion):
    tr = load_dataset("fashion_mnist", root=fake_fashion, split="train", val_fraction=0)
    te = load_dataset("fashion_mnist", root=fake_fashion, split="test")
    assert len(tr) == len(te) == 30 and tr.class_names[0] == "T-shirt/top" and te.class_names[0] == "Sandal"
    x, y = tr[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= y < 5
    img = load_dataset("fashion_mnist", root=fake_fashion, split="train", protocol="images", val_fraction=0)
    assert len(img) == 40 and img.num_classes == 10
    assert len(load_dataset("fashion_mnist", root=fake_fashion, split="test", protocol="images")) == 20
    # uncompressed files are accepted too
    raw = fake_fashion / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((fake_fashion / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (fake_fashion / "t10k-labels-idx1-ubyte.gz").unlink()
    assert len(load_dataset("fashion_mnist", root=fake_fashion, split="all")) == 60


def test_fashion_from_data_home(fake_fashion, monkeypatch):
    monkeypatch.setenv("DMLBOOK_DATA", str(fake_fashion.parent))
    fake_fashion.rename(fake_fashion.parent / "fashion-mnist")  # second candidate name
    assert find_root("fashion_mnist").name == "fashion-mnist"


def test_idx_errors(tmp_path):
    bad = tmp_path / "x-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "y-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + np.asarray([5], ">u4").tobytes() + b"\x01\x02")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)


def test_cub_layout(fake_cub):
    all_ = load_dataset("cub200", root=fake_cub, split="all")
    assert isinstance(all_, ImageDataset) and len(all_) == 24 and all_.num_classes == 8
    assert all_.meta["bbox"].shape == (24, 4) and all_.class_names[0] == "001.Bird_1"
    tr = load_dataset("cub200", root=fake_cub, split="train", val_fraction=0.2)
    va = load_dataset("cub200", root=fake_cub, split="val", val_fraction=0.2)
    te = load_dataset("cub200", root=fake_cub, split="test")
    assert (tr.num_classes, va.num_classes, te.num_classes) == (4, 1, 3)
    assert set(te.class_ids) == {101, 102, 103} and set(tr.class_ids) | set(va.class_ids) == {1, 2, 3, 4, 5}
    x, y = tr[0]  # default training transform: 224 x 224, normalised
    assert x.shape == (3, 224, 224) and isinstance(y, int)
    small = load_dataset(
        "cub200", root=fake_cub, split="test", transform=T.Compose([T.Resize(8), T.ToTensor()])
    )
    assert small[0][0].shape == (3, 8, 8)


def test_cub_nested_folder_from_data_home(fake_cub, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "cub200").mkdir(parents=True)
    fake_cub.rename(home / "cub200" / "CUB_200_2011")
    monkeypatch.setenv("DMLBOOK_DATA", str(home))
    assert len(load_dataset("cub200", split="test")) == 9


def test_cars_csv_layout(fake_cars_csv):
    tr = load_dataset("cars196", root=fake_cars_csv, split="train", val_fraction=0)
    te = load_dataset("cars196", root=fake_cars_csv, split="test")
    assert list(tr.class_ids) == [1, 2, 3] and list(te.class_ids) == [99, 100, 101]
    assert len(tr) == len(te) == 9 and tr.meta["bbox"].shape == (9, 4)
    assert te.class_names[0] == "Car model 99"


def test_cars_devkit_layout(fake_cars_devkit):
    all_ = load_dataset("cars196", root=fake_cars_devkit, split="all")
    assert len(all_) == 18 and set(all_.meta["part"]) == {"train", "test"}
    assert all_.class_names[0] == "Model 1" and all_.class_names[-1] == "Model 101"
    te = load_dataset("cars196", root=fake_cars_devkit, split="test", transform=T.ToTensor())
    x, _ = te[0]
    assert x.shape == (3, 10, 12)
    assert any("cars_test" in p for p in all_.paths) and any("cars_train" in p for p in all_.paths)
    (fake_cars_devkit / "cars_test_annos_withlabels.mat").unlink()  # train half only
    assert len(load_dataset("cars196", root=fake_cars_devkit, split="all")) == 9


def test_cars_annos_layout(tmp_path, cars_rows, fakes):
    root = tmp_path / "cars196"
    rows = [(c, f"car_ims/{f[:-4]}0.jpg") for c, f in cars_rows]
    for c, f in rows:
        fakes.write_jpeg(root / f, (c, 1, 1))
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [np.array([f"M{i}"]) for i in range(1, 197)]
    # cars_annos.mat: relative_im_path instead of fname, plus a 'test' flag
    import scipy.io as sio

    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    rec = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (c, f) in enumerate(rows):
        rec[0, i] = (np.array([f]), *[np.array([[v]], np.uint16) for v in (1, 2, 3, 4, c, i % 2)])
    sio.savemat(str(root / "cars_annos.mat"), {"annotations": rec, "class_names": names})
    all_ = load_dataset("cars196", root=root, split="all")
    assert len(all_) == 18 and all_.class_names[-1] == "M101" and set(all_.meta["part"]) == {"train", "test"}


def test_sop_layout(fake_sop):
    tr = load_dataset("sop", root=fake_sop, split="train", val_fraction=0)
    te = load_dataset("sop", root=fake_sop, split="test")
    assert list(tr.class_ids) == [1, 2, 3] and list(te.class_ids) == [4, 5]
    assert set(te.meta["super_class_id"]) == {1, 2}
    assert load_dataset("sop", root=fake_sop, split="val", val_fraction=0.34).num_classes == 1


def test_folder_layout(fake_folder):
    all_ = load_dataset("folder", root=fake_folder, split="all", transform=T.ToTensor())
    assert all_.class_names == ["beach", "forest", "harbor", "river"] and len(all_) == 12
    assert all(p.endswith(".jpg") for p in all_.paths)
    tr = load_dataset("folder", root=fake_folder, split="train", val_fraction=0)
    assert tr.class_names == ["beach", "forest"]
    tr = load_dataset("folder", root=fake_folder, split="train", val_fraction=0, train_classes=["river"])
    assert tr.class_names == ["river"]
    with pytest.raises(ValueError, match="unknown classes"):
        load_dataset("folder", root=fake_folder, train_classes=["desert"])
    # <root>/<class>/* without an images/ level
    assert len(load_dataset("folder", root=fake_folder / "images", split="all")) == 12


def test_features_npz(fake_npz):
    ds = load_dataset("features", root=fake_npz, split="all", key="mobilenet_v2_1.0_224_quant")
    assert ds.data.shape == (24, 5) and ds.num_classes == 6 and "fnames" in ds.meta
    with pytest.raises(ValueError, match="choose one with key="):
        load_dataset("features", root=fake_npz)
    with pytest.raises(ValueError, match="no array 'nope'"):
        load_dataset("features", root=fake_npz, key="nope")
    tr = load_dataset(
        "features", root=fake_npz.parent, split="train", val_fraction=0, key="mobilenet_v2_1.0_224_quant"
    )
    assert list(tr.class_ids) == [1, 2, 3]
    cars = load_dataset("cars196_features", root=fake_npz, split="all")  # default key: the v1 embedding
    assert cars.data.shape == (24, 3)


@pytest.mark.parametrize(
    "name, fixture, remove, missing",
    [
        ("cub200", "fake_cub", "image_class_labels.txt", "image_class_labels.txt"),
        ("cub200", "fake_cub", "images", "images/"),
        ("fashion_mnist", "fake_fashion", "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        ("cars196", "fake_cars_csv", "images", "images/"),
        ("cars196", "fake_cars_devkit", "cars_test", "cars_test/"),
        ("sop", "fake_sop", "Ebay_test.txt", "Ebay_test.txt"),
        ("sop", "fake_sop", "chair_final", "chair_final/"),
    ],
)
def test_missing_file_names_folder_file_and_source(name, fixture, remove, missing, request):
    import shutil

    root = request.getfixturevalue(fixture)
    target = root / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=root)
    err = info.value
    assert isinstance(err, FileNotFoundError) and err.missing == missing and err.folder == root
    text = str(err)
    assert str(root) in text and missing in text and "data/README.md" in text
    assert dataset_info(name).url.split()[0] in text


def test_missing_folder_in_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DMLBOOK_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        load_dataset("cub200")
    assert info.value.folder == tmp_path / "cub200"
    assert "python -m dmlbook data download cub200" in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="Manual step"):
        load_dataset("sop")
    with pytest.raises(DatasetNotFoundError, match="pass root="):
        load_dataset("features")
    assert dataset_status("cub200")[0] is False and dataset_status("digits")[0] is True


def test_explicit_root_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("folder", root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="sub-folders"):
        load_dataset("folder", root=tmp_path / "empty")


# ---- damaged images, too few classes, arguments a loader does not take (issue 17) ------------------------------


def test_corrupt_png_in_a_folder_is_named_when_the_dataset_is_built(fake_folder):
    from PIL import Image

    good = fake_folder / "images" / "forest" / "forest99.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(good)
    cut = fake_folder / "images" / "harbor" / "harbor99.png"
    cut.write_bytes(good.read_bytes()[:40])  # a valid signature, then cut short
    junk = fake_folder / "images" / "river" / "river99.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(
        ValueError, match=r"2 of 15 image files cannot be read: .*harbor99.png .*river99.png"
    ) as info:
        load_dataset("folder", root=fake_folder, split="train")
    assert info.value.path == cut
    ds = load_dataset("folder", root=fake_folder, split="all", check_files=False)  # the check can be skipped
    with pytest.raises(ValueError, match=rf"{junk}: cannot decode the image"):  # and decoding still names it
        ds[list(ds.paths).index(str(junk))]


def test_truncated_jpeg_is_named_when_decoded(fake_folder):
    # a JPEG cut short after its header passes the header check on large images; decoding must name it
    path = fake_folder / "images" / "beach" / "beach00.jpg"
    path.write_bytes(path.read_bytes()[:-200])
    ds = load_dataset("folder", root=fake_folder, split="all", check_files=False)
    with pytest.raises(ValueError, match=rf"{path}: cannot decode the image \(OSError: "):
        ds[list(ds.paths).index(str(path))]


def test_one_class_folder_says_what_was_found_and_what_is_needed(fake_folder):
    import shutil

    for cls in ("forest", "harbor", "river"):
        shutil.rmtree(fake_folder / "images" / cls)
    with pytest.raises(ValueError) as info:
        load_dataset("folder", root=fake_folder)
    text = str(info.value)
    assert str(fake_folder / "images") in text and "found 1 class folder with images ('beach')" in text
    assert "needs at least 2" in text and "between 1 and 0" not in text


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        (
            "digits",
            {"foo": 1},
            (
                r"dataset 'digits' does not take 'foo'; its loader takes no arguments \(besides "
                r"load_dataset's root, split, val_fraction, seed, transform\)"
            ),
        ),
        (
            "folder",
            {"foo": 1, "bar": 2},
            (
                r"dataset 'folder' does not take 'bar', 'foo'; its loader accepts: "
                r"transform, train_classes, check_files"
            ),
        ),
    ],
)
def test_an_argument_the_loader_does_not_take_lists_those_it_does(name, kwargs, match, fake_folder):
    with pytest.raises(TypeError, match=match):
        load_dataset(name, root=fake_folder if name == "folder" else None, **kwargs)


# ---- damaged IDX files read directly; damaged images in the other image loaders (issue 17) ---------------------


def _idx_gz(path, keep=None):
    """A gzipped IDX file of 10 labels; ``keep``: cut the compressed bytes to this fraction."""
    data = gzip.compress(bytes([0, 0, 8, 1]) + np.asarray([10], ">u4").tobytes() + bytes(range(10)), mtime=0)
    path.write_bytes(data if keep is None else data[: int(len(data) * keep)])
    return path


def test_read_idx_names_a_truncated_gz_and_the_fix(tmp_path):
    import re

    from dmlbook.data import DamagedFileError

    path = _idx_gz(tmp_path / "a-idx1-ubyte.gz", keep=0.7)
    fix = f"python -m dmlbook data download fashion_mnist --force --root {tmp_path}"
    with pytest.raises(
        DamagedFileError, match=rf"{re.escape(str(path))} is truncated: .*{re.escape(fix)}"
    ) as info:
        read_idx(path)
    assert info.value.path == path and isinstance(info.value.__cause__, EOFError)
    assert read_idx(_idx_gz(tmp_path / "b-idx1-ubyte.gz")).tolist() == list(range(10))  # an intact one reads


@pytest.mark.parametrize(
    ("damage", "cause", "why"),
    [
        ("not gzip", "BadGzipFile", "Not a gzipped file"),
        ("crc", "BadGzipFile", "CRC check failed"),
        ("deflate", "zlib.error", "Error -3 while decompressing"),
    ],
)
def test_read_idx_names_a_corrupt_gz(tmp_path, damage, cause, why):
    from dmlbook.data import DamagedFileError

    path = _idx_gz(tmp_path / "c-idx1-ubyte.gz")
    data = bytearray(path.read_bytes())
    if damage == "not gzip":
        data = bytearray(b"<html>404 Not Found</html>")  # what a failed download can leave behind
    elif damage == "crc":
        data[-8] ^= 0xFF  # the stored CRC-32 of the content
    else:
        data[10:-8] = b"\xff" * (len(data) - 18)  # the deflate stream itself
    path.write_bytes(bytes(data))
    with pytest.raises(
        DamagedFileError,
        match=rf"{path} is not a valid gzip file \({cause}: {why}.*"
        r"download fashion_mnist --force",
    ) as info:
        read_idx(path)
    assert info.value.path == path and info.value.__cause__ is not None


def test_read_fashion_mnist_names_the_damaged_file(fake_fashion):
    from dmlbook.data import DamagedFileError
    from dmlbook.data.fashion_mnist import read_fashion_mnist

    damaged = fake_fashion / "t10k-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(DamagedFileError, match=rf"{damaged} is truncated") as info:
        read_fashion_mnist(fake_fashion)
    assert info.value.path == damaged


def _image_of(name, root):
    """One image file of the fabricated ``name`` tree."""
    pattern = {"cars196": "images/*.jpg", "cub200": "images/*/*.jpg", "sop": "*_final/*.JPG"}[name]
    return sorted(root.glob(pattern))[2]


@pytest.mark.parametrize(
    ("name", "fixture"),
    [
        ("cars196", "fake_cars_csv"),
        ("cars196", "fake_cars_devkit"),
        ("cub200", "fake_cub"),
        ("sop", "fake_sop"),
    ],
)
@pytest.mark.parametrize("damage", ["junk", "empty"])
def test_a_damaged_image_is_named_when_the_dataset_is_built(name, fixture, damage, request):
    root = request.getfixturevalue(fixture)
    pattern = {"fake_cars_devkit": "cars_*/*.jpg"}.get(fixture)
    bad = sorted(root.glob(pattern))[2] if pattern else _image_of(name, root)
    bad.write_bytes(b"" if damage == "empty" else b"\xff\xd8 not really a JPEG")
    assert_damaged_image_is_named(name, root, bad, not_a_flag="no")

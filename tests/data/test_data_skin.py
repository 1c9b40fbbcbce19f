"""Dermoscopy loaders (ISIC 2016, PH2) on fabricated trees in each layout, the generated lesions, and the real
folders under $DMLBOOK_DATA when present."""

from pathlib import Path

import numpy as np
import pytest
import torch
from support import assert_damaged_image_is_named

from dmlbook.data import (
    DatasetNotFoundError,
    ImageDataset,
    dataset_info,
    find_root,
    list_datasets,
    load_dataset,
)
from dmlbook.data.skin import (
    ISIC_CLASSES,
    ISIC_TEST_CSV,
    ISIC_TEST_DIR,
    ISIC_TRAIN_CSV,
    ISIC_TRAIN_DIR,
    PH2_CLASSES,
    RandomDihedral,
    lesion_tensors,
    load_mask,
    make_lesions,
    read_ph2_txt,
)

ISIC_ROWS = [(f"ISIC_{i:07d}", "malignant" if i % 4 == 0 else "benign") for i in range(12)]
PH2_ROWS = [
    ("IMD002", 1),
    ("IMD003", 0),
    ("IMD004", 1),
    ("IMD006", 0),
    ("IMD008", 2),
    ("IMD009", 0),
    ("IMD010", 2),
    ("IMD013", 1),
    ("IMD014", 2),
]


def _mask(path: Path, size=(12, 10), box=(2, 3, 8, 7)) -> None:
    from PIL import Image

    arr = np.zeros((size[1], size[0]), np.uint8)
    arr[box[1] : box[3], box[0] : box[2]] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def isic_csv(tmp_path, fakes):
    root = tmp_path / "isic2016"
    lines = ["image,label,class_name,width,height"]
    for k, (name, cls) in enumerate(ISIC_ROWS):
        fakes.write_jpeg(root / "images" / f"{name}.jpg", (10 * k, 0, 0))
        lines.append(f"{name},{int(cls == 'malignant')},{cls},12,10")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def isic_official(tmp_path, fakes):
    root = tmp_path / "ISIC2016"
    for k, (name, _) in enumerate(ISIC_ROWS):
        fakes.write_jpeg(root / ISIC_TRAIN_DIR / f"{name}.jpg", (10 * k, 5, 5))
    (root / ISIC_TRAIN_CSV).write_text("".join(f"{n},{c}\n" for n, c in ISIC_ROWS))
    return root


@pytest.fixture
def ph2_csv(tmp_path, fakes):
    root = tmp_path / "ph2"
    lines = ["image,label,class_name,histological_diagnosis"]
    for k, (name, label) in enumerate(PH2_ROWS):
        fakes.write_jpeg(root / "images" / f"{name}.jpg", (20 * k, 9, 9))
        _mask(root / "masks" / f"{name}_lesion.png", box=(1 + k % 3, 2, 9, 8))
        lines.append(f"{name},{label},{PH2_CLASSES[label]},")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _ph2_official(base: Path, fakes, *, txt: str = "official") -> Path:
    from PIL import Image

    images = base / "PH2 Dataset images"
    for k, (name, _) in enumerate(PH2_ROWS):
        folder = images / name
        (folder / f"{name}_Dermoscopic_Image").mkdir(parents=True)
        Image.new("RGB", (12, 10), (20 * k, 1, 1)).save(folder / f"{name}_Dermoscopic_Image" / f"{name}.bmp")
        _mask(folder / f"{name}_lesion" / f"{name}_lesion.bmp", box=(0, 0, 6, 5))
    if txt == "official":  # the ADDI file: '||' between groups, '|' inside the criteria group, legend after
        rows = [
            "||   Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry | Pigment Network ||  Colors ||"
        ]
        rows += [
            f"|| {n} ||  {'Melanoma' if lab == 2 else ''} ||  {lab}  ||  0 | T ||  1 4  ||"
            for n, lab in PH2_ROWS
        ]
        rows += ["", "Legends for Clinical Diagnosis:", "0 - Common Nevus", "2 - Melanoma"]
    else:  # a tab-separated copy
        rows = (
            ["Name\tClinical Diagnosis\tAsymmetry"]
            + [f"{n}\t{lab}\t0" for n, lab in PH2_ROWS]
            + ["\t\t", "gends f\t\t"]
        )
    (base / "PH2_dataset.txt").write_text("\n".join(rows) + "\n", encoding="latin-1")
    return base


def test_registered():
    assert {"isic2016", "ph2"} <= set(list_datasets())
    assert dataset_info("isic2016").num_classes == 2 and dataset_info("ph2").num_classes == 3
    assert dataset_info("isic2016").input_kind == dataset_info("ph2").input_kind == "image"


def test_isic_csv_layout_and_stratified_split(isic_csv):
    all_ = load_dataset("isic2016", root=isic_csv, split="all")
    assert isinstance(all_, ImageDataset) and len(all_) == 12
    assert all_.class_names == ["benign", "malignant"] and all_.class_counts().tolist() == [9, 3]
    assert all_.meta["image_id"][0] == "ISIC_0000000" and all_.labels[0] == 1
    tr = load_dataset("isic2016", root=isic_csv, split="train", val_fraction=0)
    te = load_dataset("isic2016", root=isic_csv, split="test")
    # a stratified image split: both classes on both sides, 30 % of each class in test, nothing shared
    assert te.class_counts().tolist() == [3, 1] and tr.class_counts().tolist() == [6, 2]
    assert not set(tr.paths) & set(te.paths)
    te2 = load_dataset("isic2016", root=isic_csv, split="test", test_fraction=0.5, seed=3)
    assert te2.class_counts().tolist() == [4, 2]  # round(4.5) = 4 (banker's), round(1.5) = 2
    x, y = te[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and y in (0, 1)
    # the seed changes which images are held out, not how many
    other = load_dataset("isic2016", root=isic_csv, split="test", seed=1)
    assert other.class_counts().tolist() == [3, 1]


def test_isic_official_layout(isic_official, fakes):
    all_ = load_dataset("isic2016", root=isic_official, split="all")
    assert len(all_) == 12 and all_.class_counts().tolist() == [9, 3] and set(all_.meta["part"]) == {"train"}
    assert Path(all_.paths[0]).parent.name == ISIC_TRAIN_DIR
    # with the official test part the split follows it; numeric labels (0.0 / 1.0) as in the test CSV
    for k in range(4):
        fakes.write_jpeg(isic_official / ISIC_TEST_DIR / f"ISIC_90000{k:02d}.jpg", (0, 0, 10 * k))
    (isic_official / ISIC_TEST_CSV).write_text(
        "".join(f"ISIC_90000{k:02d},{float(k % 2)}\n" for k in range(4))
    )
    te = load_dataset("isic2016", root=isic_official, split="test")
    tr = load_dataset("isic2016", root=isic_official, split="train", val_fraction=0)
    assert len(te) == 4 and te.class_counts().tolist() == [2, 2] and len(tr) == 12
    assert set(te.meta["part"]) == {"test"}


def test_isic_errors_name_folder_and_file(tmp_path, isic_official, isic_csv):
    with pytest.raises(DatasetNotFoundError, match="labels.csv") as err:
        load_dataset("isic2016", root=tmp_path / "nowhere")
    assert "does not exist" in str(err.value) and "isic-challenge-data" in str(err.value)
    (isic_official / ISIC_TRAIN_DIR / "ISIC_0000005.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=f"'{ISIC_TRAIN_DIR}/ISIC_0000005.jpg' not found") as err:
        load_dataset("isic2016", root=isic_official)
    assert "1 of 12 image files" in str(err.value) and err.value.missing.endswith("ISIC_0000005.jpg")
    (isic_official / ISIC_TEST_CSV).write_text("ISIC_9,0.0\n")
    with pytest.raises(DatasetNotFoundError, match=ISIC_TEST_DIR):
        find_root("isic2016", isic_official)
    (isic_csv / "labels.csv").write_text("image,label\nISIC_0000000,maybe\n")
    with pytest.raises(ValueError, match="neither benign/malignant nor 0/1"):
        load_dataset("isic2016", root=isic_csv, split="all")


def test_isic_found_under_data_home(isic_csv, monkeypatch):
    monkeypatch.setenv("DMLBOOK_DATA", str(isic_csv.parent))
    assert find_root("isic2016") == isic_csv


def test_ph2_csv_layout_and_masks(ph2_csv):
    all_ = load_dataset("ph2", root=ph2_csv, split="all")
    assert (
        len(all_) == 9 and all_.class_names == list(PH2_CLASSES) and all_.class_counts().tolist() == [3, 3, 3]
    )
    assert Path(all_.meta["mask"][0]).name == "IMD002_lesion.png"
    m = load_mask(all_.meta["mask"][0])
    assert (
        m.shape == (10, 12) and m.dtype == torch.bool and int(m.sum()) == (9 - 1) * (8 - 2)
    )  # box x 1..8, y 2..7
    assert load_mask(all_.meta["mask"][0], (20, 24)).shape == (20, 24)
    # subsets keep images and masks aligned
    sub = all_.subset(np.array([4, 1]))
    assert [Path(p).stem for p in sub.paths] == ["IMD008", "IMD003"]
    assert [Path(p).name for p in sub.meta["mask"]] == ["IMD008_lesion.png", "IMD003_lesion.png"]
    te = load_dataset("ph2", root=ph2_csv, split="test")
    assert te.class_counts().tolist() == [1, 1, 1]
    (ph2_csv / "masks" / "IMD009_lesion.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="masks/IMD009_lesion.png"):
        load_dataset("ph2", root=ph2_csv, split="all")


@pytest.mark.parametrize("txt", ["official", "tabs"])
@pytest.mark.parametrize("nested", [False, True])
def test_ph2_official_layout(tmp_path, fakes, txt, nested):
    base = tmp_path / "ph2_download"
    _ph2_official(base / "PH2Dataset" if nested else base, fakes, txt=txt)
    all_ = load_dataset("ph2", root=base, split="all")
    assert len(all_) == 9 and all_.class_counts().tolist() == [3, 3, 3]
    assert [str(i) for i in all_.meta["image_id"]] == sorted(n for n, _ in PH2_ROWS)
    assert dict(zip(all_.meta["image_id"], all_.labels.tolist())) == dict(PH2_ROWS)
    assert all_.meta["mask"][0].endswith("IMD002_lesion/IMD002_lesion.bmp")
    images, masks = lesion_tensors(all_, 8)
    assert images.shape == (9, 3, 8, 8) and images.dtype == torch.uint8 and masks.shape == (9, 8, 8)
    # the masks cover the top-left 6 x 5 of 12 x 10 pixels: a quarter of the area survives the resize
    assert abs(masks.float().mean().item() - 0.25) < 0.1


def test_ph2_txt_errors(tmp_path, fakes):
    path = tmp_path / "PH2_dataset.txt"
    path.write_text("Name\tAsymmetry\nIMD001\t0\n")
    with pytest.raises(ValueError, match="no header row"):
        read_ph2_txt(path)
    path.write_text("Name\tClinical Diagnosis\nIMD001\t7\n")
    with pytest.raises(ValueError, match="expected 0, 1 or 2"):
        read_ph2_txt(path)
    with pytest.raises(DatasetNotFoundError, match="PH2_dataset.txt") as err:
        _ph2_official(tmp_path / "p", fakes)
        (tmp_path / "p" / "PH2_dataset.txt").unlink()
        load_dataset("ph2", root=tmp_path / "p")
    assert "fc.up.pt" in str(err.value)


def test_lesion_tensors_of_files_and_of_generated(ph2_csv):
    ds = load_dataset("ph2", root=ph2_csv, split="all")
    images, masks = lesion_tensors(ds, (16, 20))
    assert images.shape == (9, 3, 16, 20) and masks.shape == (9, 16, 20)
    assert images[0, 0].float().mean().item() == pytest.approx(0, abs=3)  # the first image is (0, 9, 9)
    assert images[1, 0].float().mean().item() == pytest.approx(20, abs=3)
    none_masks = lesion_tensors(ds, 8, masks=False)[1]
    assert none_masks is None
    gen = make_lesions((4, 2), size=32, seed=0)
    x, m = lesion_tensors(gen, 32)
    assert torch.equal(x, gen.data) and torch.equal(m, torch.as_tensor(gen.meta["mask"]))
    x16, m16 = lesion_tensors(gen, 16)
    assert x16.shape == (6, 3, 16, 16) and m16.shape == (6, 16, 16)
    assert abs(m16.float().mean().item() - m.float().mean().item()) < 0.03  # the area survives the resize


def test_make_lesions():
    ds = make_lesions((30, 10), size=32, seed=5)
    assert ds.data.shape == (40, 3, 32, 32) and ds.data.dtype == torch.uint8
    assert ds.class_counts().tolist() == [30, 10] and ds.class_names == ["benign", "malignant"]
    mask, sev = ds.meta["mask"], ds.meta["severity"]
    assert mask.shape == (40, 32, 32) and mask.dtype == bool
    assert (mask.reshape(40, -1).any(1)).all() and 0.05 < mask.mean() < 0.5
    assert sev[:30].max() <= 0.6 and sev[30:].min() >= 0.4
    # the lesion is darker than the skin around it
    x = ds.data.float().mean(1).numpy()  # (N, H, W) grey
    assert all(x[i][mask[i]].mean() < x[i][~mask[i]].mean() - 30 for i in range(40))
    # seeded: the same seed gives the same images, another seed others
    assert torch.equal(make_lesions((30, 10), size=32, seed=5).data, ds.data)
    assert not torch.equal(make_lesions((30, 10), size=32, seed=6).data, ds.data)
    # three classes, as PH2
    ph = make_lesions(
        (2, 2, 2), size=16, severity=((0, 0.3), (0.3, 0.6), (0.6, 1)), class_names=PH2_CLASSES, tone=0.5
    )
    assert ph.class_names == list(PH2_CLASSES) and ph.data.shape == (6, 3, 16, 16)
    # indexing gives float images in [0, 1]
    x0, y0 = ds[0]
    assert x0.dtype == torch.float32 and 0 <= x0.min() and x0.max() <= 1 and y0 == 0


def test_make_lesions_severity_drives_the_border():
    """More severe lesions have a more irregular outline: a larger perimeter for their area."""
    ds = make_lesions((40, 40), size=64, severity=((0.0, 0.1), (0.9, 1.0)), hairs=0.0, seed=1)
    m = torch.as_tensor(ds.meta["mask"]).float()
    edge = (m[:, 1:, :] != m[:, :-1, :]).sum((1, 2)) + (m[:, :, 1:] != m[:, :, :-1]).sum((1, 2))
    compact = edge.float() / m.sum((1, 2)).sqrt()  # perimeter / sqrt(area): larger = less compact
    assert compact[40:].mean() > 1.2 * compact[:40].mean()


@pytest.mark.parametrize(
    "kwargs, err, match",
    [  # the rule of dmlbook._checks: a wrong type is a TypeError, a wrong value a ValueError
        ({"n_per_class": 5}, TypeError, "non-empty sequence"),
        ({"n_per_class": (5, 0)}, ValueError, "ints >= 1"),
        ({"n_per_class": (5, 2.0)}, TypeError, "ints >= 1"),
        ({"size": 8}, ValueError, "size must be >= 16"),
        ({"size": 32.0}, TypeError, "size must be an int"),
        ({"severity": ((0, 0.5),)}, ValueError, "one \\(low, high\\) pair"),
        ({"severity": ((0, 0.5), (0.7, 0.2))}, ValueError, "one \\(low, high\\) pair"),
        ({"class_names": ("a",)}, ValueError, "class_names has 1"),
        ({"hairs": -1}, ValueError, "hairs must be"),
        ({"hairs": "many"}, TypeError, "hairs must be a number"),
        ({"tone": 2.0}, ValueError, "tone must be"),
    ],
)
def test_make_lesions_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        make_lesions(**kwargs)


def test_generator_has_its_own_module():
    """make_lesions lives in dmlbook.data.synthetic_lesions; skin and dmlbook.data re-export it."""
    from dmlbook import data
    from dmlbook.data import skin, synthetic_lesions

    assert data.make_lesions is skin.make_lesions is synthetic_lesions.make_lesions
    assert synthetic_lesions.make_lesions.__module__ == "dmlbook.data.synthetic_lesions"
    assert make_lesions((1, 1), size=16).class_names == list(ISIC_CLASSES)  # the default names are ISIC's


def test_random_dihedral():
    x = torch.arange(9.0).view(1, 3, 3)
    torch.manual_seed(0)
    seen = {tuple(RandomDihedral()(x).flatten().tolist()) for _ in range(200)}
    assert len(seen) == 8  # all orientations of the square
    assert all(sorted(s) == list(range(9)) for s in seen)
    with pytest.raises(ValueError, match="square"):
        RandomDihedral()(torch.zeros(1, 3, 4))


# ------------------------------------------------------------------------------------ damaged images (issue 17)
@pytest.mark.parametrize(
    ("name", "fixture", "stem"), [("isic2016", "isic_csv", "ISIC_0000003"), ("ph2", "ph2_csv", "IMD006")]
)
def test_a_damaged_image_is_named_when_the_dataset_is_built(name, fixture, stem, request):
    root = request.getfixturevalue(fixture)
    bad = root / "images" / f"{stem}.jpg"
    bad.write_bytes(b"\xff\xd8 not really a JPEG")
    assert_damaged_image_is_named(name, root, bad, not_a_flag=1)


# --------------------------------------------------------------------------------------------------- real data
def _real(real_data: Path, name: str) -> Path:
    if not (real_data / name).is_dir():
        pytest.skip(f"{real_data / name} is missing")
    return real_data / name


@pytest.mark.realdata
def test_isic2016_real(real_data):
    root = _real(real_data, "isic2016")
    all_ = load_dataset("isic2016", split="all")
    assert len(all_) == 860 and all_.class_counts().tolist() == [687, 173]
    # the official ground truth agrees with labels.csv for every image that is here
    gt = dict(line.split(",") for line in (root / ISIC_TRAIN_CSV).read_text().split())
    assert all((gt[i] == "malignant") == bool(y) for i, y in zip(all_.meta["image_id"], all_.labels))
    te = load_dataset("isic2016", split="test")
    assert te.class_counts().tolist() == [206, 52]
    # the frozen-feature file is in labels.csv order
    with np.load(root / "features_mobilenet.npz") as z:
        assert np.array_equal(z["labels"], all_.labels)
        assert [Path(f).stem for f in z["fnames"]] == [str(i) for i in all_.meta["image_id"]]
    images, masks = lesion_tensors(all_.subset(np.arange(4)), 64)
    assert images.shape == (4, 3, 64, 64) and masks is None


@pytest.mark.realdata
def test_ph2_real(real_data):
    _real(real_data, "ph2")
    all_ = load_dataset("ph2", split="all")
    assert len(all_) == 200 and all_.class_counts().tolist() == [80, 80, 40]
    images, masks = lesion_tensors(all_, 64)
    assert images.shape == (200, 3, 64, 64) and masks.shape == (200, 64, 64)
    frac = masks.float().mean((1, 2))
    assert 0.01 < frac.min() and frac.max() < 1 and 0.2 < frac.mean() < 0.5
    # the lesion (mask) is darker than the skin around it in almost every image
    grey = images.float().mean(1)
    darker = [
        (grey[i][masks[i]].mean() < grey[i][~masks[i]].mean()).item() for i in range(200) if 0 < frac[i] < 1
    ]
    assert np.mean(darker) > 0.95
    full = load_mask(all_.meta["mask"][0])
    assert full.shape == (256, 342)  # IMD002: 342 x 256 px, as listed in labels.csv

"""Fixtures for the data-package tests: tiny fabricated datasets in each official layout, and a local HTTP server."""

from __future__ import annotations

import gzip
import http.server
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest

CARS_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")


def write_jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=90)


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """IDX: two zero bytes, type code 0x08 (ubyte), ndim, big-endian uint32 dims, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_cars_mat(
    path: Path,
    rows: list[tuple[int, str]],
    *,
    key: str = "annotations",
    extra_fields: dict[str, list] | None = None,
    top_level: dict | None = None,
) -> None:
    """A devkit-style struct array (1, N) with MATLAB-like per-field arrays, as in cars_train_annos.mat."""
    import scipy.io as sio

    extra_fields = extra_fields or {}
    fields = list(CARS_FIELDS) + list(extra_fields)
    rec = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (cls, fname) in enumerate(rows):
        values = [
            np.array([[1]], np.uint8),
            np.array([[2]], np.uint8),
            np.array([[300]], np.uint16),
            np.array([[200]], np.uint16),
            np.array([[cls]], np.uint8),
            np.array([fname]),
        ]
        values += [
            np.array([[v[i]]]) if not isinstance(v[i], str) else np.array([v[i]])
            for v in extra_fields.values()
        ]
        rec[0, i] = tuple(values)
    sio.savemat(str(path), {key: rec, **(top_level or {})})


@pytest.fixture
def fakes() -> SimpleNamespace:
    """The file writers above, for tests that build their own trees."""
    return SimpleNamespace(
        CARS_FIELDS=CARS_FIELDS,
        write_jpeg=write_jpeg,
        write_idx_gz=write_idx_gz,
        write_cars_mat=write_cars_mat,
    )


@pytest.fixture
def fake_fashion(tmp_path: Path) -> Path:
    root = tmp_path / "fashion"
    root.mkdir()
    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("t10k", 20)):
        labels = np.arange(n) % 10
        write_idx_gz(root / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx_gz(root / f"{part}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def fake_cub(tmp_path: Path) -> Path:
    root = tmp_path / "CUB_200_2011"
    classes = [1, 2, 3, 4, 5, 101, 102, 103]
    images, labels, boxes, image_id = [], [], [], 0
    for c in classes:
        for j in range(3):
            image_id += 1
            rel = f"{c:03d}.Bird_{c}/Bird_{c}_{j}.jpg"
            write_jpeg(root / "images" / rel, (c % 256, 10 * j, 50))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            boxes.append(f"{image_id} 1.0 2.0 5.0 6.0")
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    (root / "classes.txt").write_text("".join(f"{c} {c:03d}.Bird_{c}\n" for c in classes))
    return root


@pytest.fixture
def cars_rows() -> list[tuple[int, str]]:
    """(class id, file name): classes 1-3 (train side) and 99-101 (test side), 3 images each."""
    return [(c, f"{i:05d}.jpg") for i, c in enumerate([1, 2, 3, 99, 100, 101] * 3, start=1)]


@pytest.fixture
def fake_cars_csv(tmp_path: Path, cars_rows) -> Path:
    root = tmp_path / "cars196_half"
    lines = ["fname,class_id,class_name,bbox_x1,bbox_y1,bbox_x2,bbox_y2,dml_split"]
    for c, f in cars_rows:
        write_jpeg(root / "images" / f, (c, 0, 0))
        lines.append(f"{f},{c},Car model {c},1,2,30,40,{'train' if c <= 98 else 'test'}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def fake_cars_devkit(tmp_path: Path, cars_rows) -> Path:
    """Official devkit layout: train half in cars_train/, labelled test half in cars_test/."""
    import scipy.io as sio

    root = tmp_path / "stanford_cars"
    (root / "devkit").mkdir(parents=True)
    train, test = cars_rows[:9], cars_rows[9:]
    for c, f in train:
        write_jpeg(root / "cars_train" / f, (c, 0, 0))
    for c, f in test:
        write_jpeg(root / "cars_test" / f, (c, 9, 9))
    write_cars_mat(root / "devkit" / "cars_train_annos.mat", train)
    write_cars_mat(root / "cars_test_annos_withlabels.mat", test)
    names = np.empty((1, 196), dtype=object)
    names[0, :] = [np.array([f"Model {i}"]) for i in range(1, 197)]
    sio.savemat(str(root / "devkit" / "cars_meta.mat"), {"class_names": names})
    return root


@pytest.fixture
def fake_sop(tmp_path: Path) -> Path:
    root = tmp_path / "Stanford_Online_Products"
    lines = {"Ebay_train.txt": [], "Ebay_test.txt": []}
    image_id = 0
    for cls, part, sup in [
        (1, "Ebay_train.txt", 1),
        (2, "Ebay_train.txt", 1),
        (3, "Ebay_train.txt", 2),
        (4, "Ebay_test.txt", 2),
        (5, "Ebay_test.txt", 1),
    ]:
        folder = "bicycle_final" if sup == 1 else "chair_final"
        for j in range(2):
            image_id += 1
            rel = f"{folder}/{cls}_{j}.JPG"
            write_jpeg(root / rel, (cls, j, 0))
            lines[part].append(f"{image_id} {cls} {sup} {rel}")
    for name, rows in lines.items():
        (root / name).write_text("image_id class_id super_class_id path\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture
def fake_folder(tmp_path: Path) -> Path:
    root = tmp_path / "scenes"
    for k, cls in enumerate(["beach", "forest", "harbor", "river"]):
        for j in range(3):
            write_jpeg(root / "images" / cls / f"{cls}{j:02d}.jpg", (40 * k, 10 * j, 0), size=(20 + j, 18))
    (root / "images" / ".hidden").mkdir()
    (root / "images" / "beach" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def fake_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(1, 7), 4)
    path = tmp_path / "features_mobilenet.npz"
    arrays = {
        "labels": labels,
        "fnames": np.asarray([f"{i:05d}.jpg" for i in range(24)]),
        "mobilenet_v2_1.0_224_quant": rng.standard_normal((24, 5)).astype(np.float32),
        "mobilenet_v1_1.0_224_quant_emb": rng.standard_normal((24, 3)).astype(np.float32),
    }
    np.savez(path, **arrays)
    return path


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    truncate: ClassVar[set[str]] = set()

    def do_GET(self) -> None:
        body = self.files.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.truncate:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server():
    """``(base_url, files, truncate)``: put bytes in ``files["/name"]``; paths in ``truncate`` are cut in half."""
    handler = type("Handler", (_Handler,), {"files": {}, "truncate": set()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.files, handler.truncate
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def real_data() -> Path:
    """The shared real datasets ($DMLBOOK_DATA); skips when unset or missing."""
    env = os.environ.get("DMLBOOK_DATA")
    if not env or not Path(env).is_dir():
        pytest.skip("DMLBOOK_DATA is not set or is not a folder")
    return Path(env)

"""Downloads against a local HTTP server on 127.0.0.1: verified, atomic, and clean on failure."""

import gzip
import hashlib
import io
import tarfile

import pytest

from dmlbook.data import ChecksumMismatchError, DamagedFileError, DownloadError, download, load_dataset
from dmlbook.data.cli import main
from dmlbook.data.download import CONTENT_SHA256, extract, fetch, verify_files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cub_archive() -> bytes:
    """A tiny CUB_200_2011.tgz: the official top folder plus the stray attributes.txt next to it."""
    from PIL import Image

    files = {"attributes.txt": b"1 has_bill_shape::curved\n"}
    rows, labels = [], []
    for i, c in enumerate([1, 2, 101, 102] * 2, start=1):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (c, i, 0)).save(buf, format="JPEG")
        rel = f"{c:03d}.B/{i}.jpg"
        files[f"CUB_200_2011/images/{rel}"] = buf.getvalue()
        rows.append(f"{i} {rel}")
        labels.append(f"{i} {c}")
    files["CUB_200_2011/images.txt"] = ("\n".join(rows) + "\n").encode()
    files["CUB_200_2011/image_class_labels.txt"] = ("\n".join(labels) + "\n").encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_archive_download_verified_and_extracted(http_server, tmp_path):
    base, files, _ = http_server
    data = _cub_archive()
    files["/mirror/CUB_200_2011.tgz"] = data
    root = tmp_path / "cub200"
    out = download("cub200", root, url=base + "/mirror/", sha256=_sha(data), progress=False)
    assert out == root and (root / "images.txt").is_file() and not (root / "attributes.txt").exists()
    assert _leftovers(tmp_path) == ["cub200"]  # no archive or temporary folder left
    assert len(load_dataset("cub200", root=root, split="test")) == 4
    # already present: nothing fetched again
    files.clear()
    assert download("cub200", root, url=base + "/mirror", sha256=_sha(data), progress=False) == root


def test_wrong_checksum_leaves_nothing(http_server, tmp_path):
    base, files, _ = http_server
    files["/CUB_200_2011.tgz"] = _cub_archive()
    with pytest.raises(ChecksumMismatchError, match="SHA-256 mismatch"):
        download("cub200", tmp_path / "cub200", url=base, progress=False)  # the official digest
    assert _leftovers(tmp_path) == []


def test_truncated_transfer_leaves_nothing(http_server, tmp_path):
    base, files, truncate = http_server
    data = _cub_archive()
    files["/CUB_200_2011.tgz"] = data
    truncate.add("/CUB_200_2011.tgz")
    with pytest.raises(DownloadError, match="truncated|failed"):
        download("cub200", tmp_path / "cub200", url=base, sha256=_sha(data), progress=False)
    assert _leftovers(tmp_path) == []


def test_http_error_and_unknown_checksum(http_server, tmp_path):
    base, _, _ = http_server
    with pytest.raises(DownloadError, match="404"):
        fetch(base + "/missing.bin", tmp_path / "x.bin", sha256="0" * 64, progress=False)
    assert _leftovers(tmp_path) == []
    with pytest.raises(DownloadError, match="no published checksum"):
        download("folder", tmp_path / "uc", url=base, progress=False)  # UC Merced: checksum unknown
    with pytest.raises(DownloadError, match="no published checksum"):
        fetch(base + "/x", tmp_path / "x.bin", progress=False)


def test_no_verify_prints_sha(http_server, tmp_path, capsys):
    base, files, _ = http_server
    data = b"payload" * 100
    files["/f.bin"] = data
    assert fetch(base + "/f.bin", tmp_path / "f.bin", verify=False, progress=True) == _sha(data)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_multi_file_fashion_download(http_server, tmp_path, fake_fashion):
    base, files, _ = http_server
    digests = {}
    for p in fake_fashion.iterdir():
        files[f"/fm/{p.name}"] = p.read_bytes()
        digests[p.name] = _sha(p.read_bytes())
    root = tmp_path / "fm_data"
    download("fashion_mnist", root, url=base + "/fm", sha256=digests, progress=False)
    assert sorted(p.name for p in root.iterdir()) == sorted(digests)
    assert len(load_dataset("fashion_mnist", root=root, split="all")) == 60
    with pytest.raises(ValueError, match="mapping"):
        download("fashion_mnist", tmp_path / "x", url=base, sha256="0" * 64, progress=False)


def test_md5_only_digest_is_checked(http_server, tmp_path):
    base, files, _ = http_server
    files["/a"] = b"abc"
    fetch(base + "/a", tmp_path / "a", md5=hashlib.md5(b"abc").hexdigest(), progress=False)
    with pytest.raises(ChecksumMismatchError, match="MD5"):
        fetch(base + "/a", tmp_path / "b", md5="0" * 32, progress=False)
    assert not (tmp_path / "b").exists()


def test_manual_and_nothing_to_download(tmp_path):
    with pytest.raises(DownloadError, match="Manual step"):
        download("sop", tmp_path, progress=False)
    assert download("digits", progress=False) is None


def test_extract_refuses_to_overwrite_and_unsafe_paths(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "a.tgz"
    archive.write_bytes(out.getvalue())
    with pytest.raises(DownloadError):
        extract(archive, tmp_path / "dest")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "dest").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(DownloadError, match="force"):
        extract(archive, tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep"
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(gzip.compress(b"not a tar")[:10])
    with pytest.raises(DownloadError, match="could not be unpacked"):
        extract(broken, tmp_path / "d2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tgz", "broken.tgz", "full"]


def test_cli_list_and_download(http_server, tmp_path, monkeypatch, capsys, fake_cub):
    monkeypatch.setenv("DMLBOOK_DATA", str(tmp_path))
    fake_cub.rename(tmp_path / "cub200")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) >= {"synthetic", "digits", "fashion_mnist", "cars196", "cub200", "sop", "features"}
    assert "present" in lines["cub200"] and str(tmp_path / "cub200") in lines["cub200"]
    assert "missing" in lines["sop"] and str(tmp_path / "sop") in lines["sop"]
    base, files, _ = http_server
    data = _cub_archive()
    files["/CUB_200_2011.tgz"] = data
    dest = tmp_path / "elsewhere"
    assert (
        main(["download", "cub200", "--root", str(dest), "--url", base, "--sha256", _sha(data), "--quiet"])
        == 0
    )
    assert (dest / "images.txt").is_file()
    assert main(["download", "cub200", "--root", str(tmp_path / "bad"), "--url", base, "--quiet"]) == 1
    assert "mismatch" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["download", "nonexistent"]) == 1
    assert main(["info", "cars196"]) == 0 and "1-98" in capsys.readouterr().out
    assert main([]) == 2


def test_module_entry_point():
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "dmlbook", "data", "download", "sop"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 1 and "Manual step" in res.stderr and res.stdout == ""


# ---- what is already present is verified (issue 17: a truncated file was "already present") ----------------


def _fashion_on_server(fake_fashion, files) -> dict[str, str]:
    """Serve the fake Fashion-MNIST files under /fm and return their SHA-256 (the "published" digests)."""
    digests = {}
    for p in fake_fashion.iterdir():
        files[f"/fm/{p.name}"] = p.read_bytes()
        digests[p.name] = _sha(p.read_bytes())
    return digests


def _truncate(path, keep=0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_present_file_is_fetched_again(http_server, tmp_path, fake_fashion, capsys):
    base, files, _ = http_server
    digests = _fashion_on_server(fake_fashion, files)
    root = tmp_path / "fm"
    download("fashion_mnist", root, url=base + "/fm", sha256=digests, progress=True)
    assert download("fashion_mnist", root, url=base + "/fm", sha256=digests, progress=True) == root
    assert "already present" in capsys.readouterr().err
    damaged = root / "train-images-idx3-ubyte.gz"
    _truncate(damaged)
    download("fashion_mnist", root, url=base + "/fm", sha256=digests, progress=True)
    err = capsys.readouterr().err
    assert "already present" not in err
    assert (
        f"{damaged} is damaged: truncated: its compressed stream ends early" in err
        and "fetching it again" in err
    )
    assert _sha(damaged.read_bytes()) == digests[damaged.name]  # the good copy is back
    assert sorted(p.name for p in root.iterdir()) == sorted(digests)  # no temporary file left


def test_damaged_file_and_no_network_says_which_file(http_server, tmp_path, fake_fashion):
    base, files, _ = http_server
    digests = _fashion_on_server(fake_fashion, files)
    root = tmp_path / "fm"
    download("fashion_mnist", root, url=base + "/fm", sha256=digests, progress=False)
    _truncate(root / "t10k-labels-idx1-ubyte.gz")
    files.clear()  # the source is gone
    with pytest.raises(
        DownloadError, match=r"t10k-labels-idx1-ubyte.gz is damaged: .*fetching a fresh copy failed"
    ):
        download("fashion_mnist", root, url=base + "/fm", sha256=digests, progress=False)


def _repack(path, level: int) -> None:
    """The same content compressed differently: another faithful packaging (different .gz bytes)."""
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=level, mtime=0))


def test_another_packaging_of_the_same_content_is_present(
    http_server, tmp_path, fake_fashion, monkeypatch, capsys
):
    base, files, _ = http_server
    digests = _fashion_on_server(fake_fashion, files)  # the "official" .gz bytes
    monkeypatch.setitem(
        CONTENT_SHA256,
        "fashion_mnist",
        {p.name: _sha(gzip.decompress(p.read_bytes())) for p in fake_fashion.iterdir()},
    )
    for p in fake_fashion.iterdir():
        _repack(p, level=1)
        assert _sha(p.read_bytes()) != digests[p.name]
    files.clear()  # nothing may be fetched
    assert (
        download("fashion_mnist", fake_fashion, url=base + "/fm", sha256=digests, progress=True)
        == fake_fashion
    )
    assert "already present" in capsys.readouterr().err
    statuses = verify_files("fashion_mnist", fake_fashion)
    assert (
        all(s.ok and "another packaging of the same content" in s.note for s in statuses)
        and len(statuses) == 4
    )
    # a different content in the same packaging is not the dataset
    bad = fake_fashion / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(bad.read_bytes())[:-1] + b"\x07"))
    status = {s.filename: s for s in verify_files("fashion_mnist", fake_fashion)}[bad.name]
    assert not status.ok and "is not the published data's" in status.note


def test_verify_command(tmp_path, fake_fashion, monkeypatch, capsys):
    monkeypatch.setitem(
        CONTENT_SHA256,
        "fashion_mnist",
        {p.name: _sha(gzip.decompress(p.read_bytes())) for p in fake_fashion.iterdir()},
    )
    assert main(["verify", "fashion_mnist", "--root", str(fake_fashion)]) == 0
    assert capsys.readouterr().out.count("ok ") == 4
    _truncate(fake_fashion / "train-images-idx3-ubyte.gz")
    assert main(["verify", "fashion_mnist", "--root", str(fake_fashion)]) == 1
    out, err = capsys.readouterr()
    assert f"DAMAGED  {fake_fashion / 'train-images-idx3-ubyte.gz'}: truncated" in out
    assert "1 of 4 files missing or damaged" in err and "download fashion_mnist --force" in err


def test_truncated_gz_read_by_the_loader_names_the_file(fake_fashion):
    damaged = fake_fashion / "train-images-idx3-ubyte.gz"
    _truncate(damaged, keep=0.8)
    with pytest.raises(
        DamagedFileError, match=rf"{damaged} is truncated.*data download fashion_mnist --force"
    ) as info:
        load_dataset("fashion_mnist", root=fake_fashion, split="all")
    assert info.value.path == damaged and isinstance(info.value.__cause__, EOFError)


def test_the_shared_debian_copy_verifies(real_data):
    # Debian's dataset-fashion-mnist: other .gz bytes than Zalando's release, the same IDX content
    statuses = verify_files("fashion_mnist", real_data / "fashion_mnist")
    assert len(statuses) == 4 and all(s.ok for s in statuses), statuses

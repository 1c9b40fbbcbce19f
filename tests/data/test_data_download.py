"""Downloads against a local HTTP server on 127.0.0.1: verified, atomic, and clean on failure."""
import gzip
import hashlib
import io
import tarfile

import pytest

from dmlbook.data import ChecksumMismatchError, DownloadError, download, load_dataset
from dmlbook.data.cli import main
from dmlbook.data.download import extract, fetch


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
    assert main(["download", "cub200", "--root", str(dest), "--url", base, "--sha256", _sha(data), "--quiet"]) == 0
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

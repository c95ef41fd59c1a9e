"""Safe unpacking of uploaded archives."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from core.data.archive import ArchiveError, safe_extract

LIMITS = {"max_bytes": 10_000, "max_files": 10}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, infos: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in infos:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_zip_and_targz_unpack(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"ds/a.txt": b"hello", "ds/sub/b.txt": b"x"})
    out = safe_extract(archive, tmp_path / "z", **LIMITS)
    assert (out / "ds" / "a.txt").read_bytes() == b"hello"
    assert (out / "ds" / "sub" / "b.txt").read_bytes() == b"x"
    archive = _tar(tmp_path / "a.tar.gz", [_file("./ds/c.txt", b"tar!")])
    out = safe_extract(archive, tmp_path / "t", **LIMITS)
    assert (out / "ds" / "c.txt").read_bytes() == b"tar!"


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "..\\evil.txt"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "a.zip", {"fine.txt": b"1", name: b"pwned"})
    with pytest.raises(ArchiveError, match="escapes"):
        safe_extract(archive, tmp_path / "out", **LIMITS)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out").exists()  # nothing is left behind


def test_absolute_paths_are_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", [_file("/tmp/evil.txt", b"x")])
    with pytest.raises(ArchiveError, match=r"'/tmp/evil.txt': absolute path"):
        safe_extract(archive, tmp_path / "out", **LIMITS)
    archive = _zip(tmp_path / "a.zip", {"C:/evil.txt": b"x"})
    with pytest.raises(ArchiveError, match="absolute path"):
        safe_extract(archive, tmp_path / "out2", **LIMITS)


def test_links_and_devices_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("ds/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = _tar(tmp_path / "sym.tar.gz", [_file("ds/a.txt", b"1"), (link, None)])
    with pytest.raises(ArchiveError, match="'ds/link': links are not allowed"):
        safe_extract(archive, tmp_path / "o1", **LIMITS)

    hard = tarfile.TarInfo("ds/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "ds/a.txt"
    archive = _tar(tmp_path / "hard.tar.gz", [_file("ds/a.txt", b"1"), (hard, None)])
    with pytest.raises(ArchiveError, match="'ds/hard': links"):
        safe_extract(archive, tmp_path / "o2", **LIMITS)

    dev = tarfile.TarInfo("ds/null")
    dev.type = tarfile.CHRTYPE
    archive = _tar(tmp_path / "dev.tar.gz", [(dev, None)])
    with pytest.raises(ArchiveError, match="'ds/null': device"):
        safe_extract(archive, tmp_path / "o3", **LIMITS)

    info = zipfile.ZipInfo("ds/zlink")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "sym.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="'ds/zlink': symbolic links"):
        safe_extract(tmp_path / "sym.zip", tmp_path / "o4", **LIMITS)


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {f"f{i}.txt": b"x" for i in range(11)})
    with pytest.raises(ArchiveError, match=r"'f10\.txt': more than 10 members"):
        safe_extract(archive, tmp_path / "out", **LIMITS)


def test_too_many_bytes_is_refused(tmp_path: Path) -> None:
    # highly compressible: a small archive that unpacks beyond the cap (a zip bomb in miniature)
    archive = _zip(tmp_path / "a.zip", {"a.bin": b"\0" * 6000, "b.bin": b"\0" * 6000})
    assert archive.stat().st_size < 1000
    with pytest.raises(ArchiveError, match=r"'b\.bin': archive unpacks to more than 10000 bytes"):
        safe_extract(archive, tmp_path / "out", **LIMITS)
    archive = _tar(tmp_path / "a.tar.gz", [_file("big.bin", b"\0" * 20_000)])
    with pytest.raises(ArchiveError, match=r"'big\.bin'"):
        safe_extract(archive, tmp_path / "out2", **LIMITS)


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ArchiveError, match=r"notes\.txt: not a zip or tar archive"):
        safe_extract(path, tmp_path / "out", **LIMITS)

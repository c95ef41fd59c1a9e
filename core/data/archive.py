"""Safe unpacking of uploaded zip and tar archives: no path escapes, no links, bounded size."""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive that is refused or cannot be read; the message names the member."""


def is_archive(path: Path) -> bool:
    """True if `path` is a zip or a (possibly compressed) tar file."""
    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except OSError:
        return False


def _safe_name(name: str) -> PurePosixPath:
    """The member's relative path, or ArchiveError if it is absolute or climbs out."""
    normalised = name.replace("\\", "/")
    if "\x00" in normalised:
        raise ArchiveError(f"member {name!r}: NUL character in the name")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise ArchiveError(f"member {name!r}: absolute path")
    parts = [p for p in PurePosixPath(normalised).parts if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"member {name!r}: path escapes the destination ('..')")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


class _Budget:
    """Counts members and bytes against the caps while unpacking."""

    def __init__(self, max_bytes: int, max_files: int) -> None:
        self.max_bytes, self.max_files = max_bytes, max_files
        self.bytes = 0
        self.files = 0

    def count_member(self, name: str) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise ArchiveError(
                f"member {name!r}: more than {self.max_files} members in the archive"
            )

    def declare(self, name: str, size: int) -> None:
        self.bytes += size
        if self.bytes > self.max_bytes:
            raise ArchiveError(
                f"member {name!r}: archive unpacks to more than {self.max_bytes} bytes"
            )


def _copy_capped(src: IO[bytes], target: Path, name: str, limit: int) -> None:
    """Copy a member, refusing it if it yields more bytes than declared (a lying header)."""
    written = 0
    with open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise ArchiveError(f"member {name!r}: holds more data than its header declares")
            out.write(chunk)


def _target(dest: Path, rel: PurePosixPath, name: str) -> Path:
    target = (dest / rel).resolve()
    if target != dest and dest not in target.parents:
        raise ArchiveError(f"member {name!r}: path escapes the destination")
    return target


def _check_zip(zf: zipfile.ZipFile, budget: _Budget) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members = []
    for info in zf.infolist():
        budget.count_member(info.filename)
        rel = _safe_name(info.filename)
        # Unix zips keep the file type in the high bits; 0 (no type) is a plain file
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise ArchiveError(f"member {info.filename!r}: symbolic links are not allowed")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"member {info.filename!r}: not a regular file or folder")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {info.filename!r}: encrypted members are not supported")
        budget.declare(info.filename, info.file_size)
        members.append((info, rel))
    return members


def _check_tar(tf: tarfile.TarFile, budget: _Budget) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    members = []
    for info in tf:
        budget.count_member(info.name)
        rel = _safe_name(info.name)
        if info.issym() or info.islnk():
            raise ArchiveError(f"member {info.name!r}: links are not allowed")
        if info.isdev() or not (info.isfile() or info.isdir()):
            raise ArchiveError(f"member {info.name!r}: device or special files are not allowed")
        budget.declare(info.name, info.size)
        members.append((info, rel))
    return members


@contextmanager
def _cleanup_on_error(dest: Path, created: bool) -> Iterator[None]:
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise


def safe_extract(archive: Path, dest: Path, *, max_bytes: int, max_files: int) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) archive into `dest`; ArchiveError if anything is unsafe.

    Every member is checked before anything is written: relative paths inside `dest` only,
    regular files and folders only (no symlinks, hard links or devices), at most `max_files`
    members and `max_bytes` unpacked bytes (also enforced on the actual bytes written).
    """
    archive = Path(archive)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    budget = _Budget(max_bytes, max_files)
    with _cleanup_on_error(dest, created):
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for info, rel in _check_zip(zf, budget):
                        target = _target(root, rel, info.filename)
                        if info.is_dir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src:
                            _copy_capped(src, target, info.filename, info.file_size)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive, mode="r:*") as tf:
                    for tinfo, rel in _check_tar(tf, budget):
                        target = _target(root, rel, tinfo.name)
                        if tinfo.isdir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        stream = tf.extractfile(tinfo)
                        if stream is None:
                            raise ArchiveError(f"member {tinfo.name!r}: cannot be read")
                        with stream:
                            _copy_capped(stream, target, tinfo.name, tinfo.size)
            else:
                raise ArchiveError(f"{archive.name}: not a zip or tar archive")
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{archive.name}: corrupt or unreadable archive ({exc})") from exc
    return dest

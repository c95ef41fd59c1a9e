"""Safe unpacking of uploaded zip and tar archives: no path escapes, no links, bounded size.

Besides the absolute caps a caller gives, the caps scale with the archive itself, so that a
small archive cannot unpack to much (archive bombs):

- unpacked bytes: at most `MAX_RATIO` (20) x the archive's size + `RATIO_FLOOR` (64 MiB);
- one zip member: at most `MAX_MEMBER_RATIO` (100) x its compressed size once above
  `MEMBER_RATIO_FLOOR` (8 MiB), checked on the declared sizes and again while writing;
- members: at most one per `BYTES_PER_MEMBER` (1 KiB) of archive + `MEMBER_FLOOR` (10,000).

Real datasets sit far inside these: JPEG/PNG pictures barely compress (ratio ~1), COCO JSON
about 5-10x, and COCO train2017 (118k images) is an 18 GB archive, allowed 18 million members
by the last rule (the caller's absolute cap, 200,000 on the platform, binds first).
"""

from __future__ import annotations

import math
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

CHUNK = 1 << 20
MIB = 1 << 20

MAX_RATIO = 20.0
"""Unpacked bytes allowed per byte of archive (on top of `RATIO_FLOOR`)."""
RATIO_FLOOR = 64 * MIB
MAX_MEMBER_RATIO = 100.0
"""Unpacked bytes allowed per compressed byte of one zip member (above `MEMBER_RATIO_FLOOR`)."""
MEMBER_RATIO_FLOOR = 8 * MIB
BYTES_PER_MEMBER = 1024
"""Archive bytes each member must account for (on top of `MEMBER_FLOOR` free members)."""
MEMBER_FLOOR = 10_000
UNPARSED_MEMBERS_FACTOR = 4
"""A zip announcing more than this many times the member cap is refused before its central
directory is parsed (parsing millions of entries costs seconds and gigabytes)."""


SUPPORTED_COMPRESSION = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
"""Zip compression methods that unpack (others, such as deflate64, are refused by name)."""


class ArchiveError(ValueError):
    """An archive that is refused or cannot be read; the message names the member."""


def unpacked_size_cap(archive_bytes: int, *, limit: float, ratio: float = MAX_RATIO) -> int:
    """Bytes an archive of `archive_bytes` may unpack to: min(limit, ratio x size + 64 MiB)."""
    return int(min(limit, ratio * max(archive_bytes, 0) + RATIO_FLOOR))


def member_count_cap(
    archive_bytes: int, *, limit: float, bytes_per_member: int = BYTES_PER_MEMBER
) -> int:
    """Members an archive of `archive_bytes` may hold: min(limit, size / 1 KiB + 10,000)."""
    return int(min(limit, max(archive_bytes, 0) // bytes_per_member + MEMBER_FLOOR))


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
    """Counts members and bytes against the caps while checking and while unpacking."""

    def __init__(self, max_bytes: int, max_files: int, bytes_rule: str, files_rule: str) -> None:
        self.max_bytes, self.max_files = max_bytes, max_files
        self.bytes_rule, self.files_rule = bytes_rule, files_rule
        self.bytes = 0
        self.files = 0
        self.written = 0

    def count_member(self, name: str) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise ArchiveError(
                f"member {name!r}: more than {self.max_files} members in the archive"
                f"{self.files_rule}"
            )

    def declare(self, name: str, size: int) -> None:
        self.bytes += size
        if self.bytes > self.max_bytes:
            raise ArchiveError(
                f"member {name!r}: archive unpacks to more than {self.max_bytes} bytes"
                f"{self.bytes_rule}"
            )

    def write(self, name: str, size: int) -> None:
        self.written += size
        if self.written > self.max_bytes:
            raise ArchiveError(
                f"member {name!r}: archive unpacks to more than {self.max_bytes} bytes"
                f"{self.bytes_rule}"
            )


def _member_cap(compressed: int, ratio: float | None) -> float:
    """Bytes one zip member may unpack to, given its compressed size."""
    if ratio is None:
        return math.inf
    return max(MEMBER_RATIO_FLOOR, ratio * compressed)


def _ratio_refusal(name: str, ratio: float | None, compressed: int) -> ArchiveError:
    return ArchiveError(
        f"member {name!r}: unpacks to more than {ratio or 0:g}x its compressed size "
        f"({compressed} bytes); refused as an archive bomb"
    )


def _copy_capped(
    src: IO[bytes],
    target: Path,
    name: str,
    *,
    declared: int,
    budget: _Budget,
    member_ratio: float | None = None,
    compressed: int = 0,
) -> None:
    """Copy a member, checking the caps on every chunk actually written.

    Refused if it yields more bytes than its header declares (a lying header), more than
    `member_ratio` x its `compressed` size (zip), or takes the archive past its byte budget.
    """
    member_cap = _member_cap(compressed, member_ratio)
    written = 0
    with open(target, "wb") as out:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > declared:
                raise ArchiveError(f"member {name!r}: holds more data than its header declares")
            if written > member_cap:
                raise _ratio_refusal(name, member_ratio, compressed)
            budget.write(name, len(chunk))
            out.write(chunk)


def _target(dest: Path, rel: PurePosixPath, name: str) -> Path:
    target = (dest / rel).resolve()
    if target != dest and dest not in target.parents:
        raise ArchiveError(f"member {name!r}: path escapes the destination")
    return target


def _check_zip(
    zf: zipfile.ZipFile, budget: _Budget, member_ratio: float | None
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
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
        if info.compress_type not in SUPPORTED_COMPRESSION:
            raise ArchiveError(
                f"member {info.filename!r}: compression method {info.compress_type} is not "
                "supported (use deflate, bzip2, lzma or none)"
            )
        if info.file_size > _member_cap(info.compress_size, member_ratio):
            raise _ratio_refusal(info.filename, member_ratio, info.compress_size)
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


def _announced_zip_members(archive: Path) -> int | None:
    """The member count a zip's end record announces, read without parsing its directory."""
    end_record = getattr(zipfile, "_EndRecData", None)  # stable since Python 2; private
    if end_record is None:
        return None
    try:
        with archive.open("rb") as fh:
            record = end_record(fh)
        return int(record[4]) if record else None  # index 4: total entries (zip64-aware)
    except (OSError, ValueError, IndexError, TypeError, struct.error):
        return None


@contextmanager
def _cleanup_on_error(dest: Path, created: bool) -> Iterator[None]:
    was_empty = created or not any(dest.iterdir())
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        elif was_empty:
            for child in list(dest.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _caps(
    archive_bytes: int,
    max_bytes: int,
    max_files: int,
    ratio: float | None,
    bytes_per_member: int | None,
) -> _Budget:
    """The budget of one archive; a rule relative to its size is named when it binds."""
    bytes_cap, bytes_rule = max_bytes, ""
    if ratio is not None:
        relative = unpacked_size_cap(archive_bytes, limit=math.inf, ratio=ratio)
        if relative <= max_bytes:
            bytes_cap = relative
            bytes_rule = (
                f" (at most {ratio:g}x the archive's {archive_bytes} bytes "
                f"+ {RATIO_FLOOR // MIB} MiB)"
            )
    files_cap, files_rule = max_files, ""
    if bytes_per_member is not None:
        relative = member_count_cap(
            archive_bytes, limit=math.inf, bytes_per_member=bytes_per_member
        )
        if relative <= max_files:
            files_cap = relative
            files_rule = (
                f" (at most one per {bytes_per_member} bytes of the {archive_bytes}-byte "
                f"archive + {MEMBER_FLOOR})"
            )
    return _Budget(bytes_cap, files_cap, bytes_rule, files_rule)


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    max_bytes: int,
    max_files: int,
    max_ratio: float | None = MAX_RATIO,
    max_member_ratio: float | None = MAX_MEMBER_RATIO,
    bytes_per_member: int | None = BYTES_PER_MEMBER,
) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) archive into `dest`; ArchiveError if anything is unsafe.

    Every member is checked before anything is written: relative paths inside `dest` only,
    regular files and folders only (no symlinks, hard links or devices), at most `max_files`
    members and `max_bytes` unpacked bytes. Both caps also shrink with the archive's size
    (`max_ratio`, `bytes_per_member`; see the module) and a zip member may not unpack to more
    than `max_member_ratio` x its compressed size; the byte caps are enforced again on the
    bytes actually written. None switches a relative rule off. On refusal nothing unpacked
    is left behind.
    """
    archive = Path(archive)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with _cleanup_on_error(dest, created):
        try:
            budget = _caps(
                archive.stat().st_size, max_bytes, max_files, max_ratio, bytes_per_member
            )
            if zipfile.is_zipfile(archive):
                announced = _announced_zip_members(archive)
                if announced is not None and announced > UNPARSED_MEMBERS_FACTOR * budget.max_files:
                    raise ArchiveError(
                        f"{archive.name}: announces {announced} members, more than "
                        f"{budget.max_files}{budget.files_rule}"
                    )
                with zipfile.ZipFile(archive) as zf:
                    for info, rel in _check_zip(zf, budget, max_member_ratio):
                        target = _target(root, rel, info.filename)
                        if info.is_dir():
                            target.mkdir(parents=True, exist_ok=True)
                            continue
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(info) as src:
                            _copy_capped(
                                src,
                                target,
                                info.filename,
                                declared=info.file_size,
                                budget=budget,
                                member_ratio=max_member_ratio,
                                compressed=info.compress_size,
                            )
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
                            _copy_capped(
                                stream, target, tinfo.name, declared=tinfo.size, budget=budget
                            )
            else:
                raise ArchiveError(f"{archive.name}: not a zip or tar archive")
        except ArchiveError:
            raise
        except (
            zipfile.BadZipFile,
            tarfile.TarError,
            EOFError,
            OSError,
            zlib.error,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            raise ArchiveError(
                f"{archive.name}: corrupt or unreadable archive ({_describe(exc)})"
            ) from exc
    return dest


def _describe(exc: BaseException) -> str:
    """An exception's message without the absolute paths an OSError carries."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__

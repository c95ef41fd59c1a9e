"""Local copies of blobs a worker needs: unpacked datasets (cached per sha) and checkpoints."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from core.data.archive import member_count_cap, safe_extract, unpacked_size_cap
from store.models import Backbone, Dataset, Teacher
from worker.context import WorkerContext

COMPLETE_MARK = ".complete"


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; if another worker won the race, keep theirs."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def unpack_archive(ctx: WorkerContext, archive_key: str, dest: Path) -> Path:
    """Download an archive blob and unpack it safely into `dest`.

    The settings' caps are absolute; below them the caps follow the archive's own size
    (`core.data.archive`: 20x its bytes + 64 MiB unpacked, one member per KiB + 10,000), and
    zip members are held to 100x their compressed size, so an archive bomb stops at once.
    """
    dest.mkdir(parents=True, exist_ok=True)
    # Named like the blob, so that errors name the file as uploaded, not a scratch path.
    holder = dest.parent / f".{dest.name}.download"
    archive = holder / (PurePosixPath(archive_key).name or "archive")
    holder.mkdir(parents=True, exist_ok=True)
    try:
        ctx.blobs.download(archive_key, archive)
        size = archive.stat().st_size
        return safe_extract(
            archive,
            dest,
            max_bytes=unpacked_size_cap(size, limit=ctx.settings.max_unpacked_bytes),
            max_files=member_count_cap(size, limit=ctx.settings.max_unpacked_files),
        )
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def dataset_folder(ctx: WorkerContext, dataset: Dataset) -> Path:
    """The unpacked dataset, downloaded once per archive sha and kept for later jobs."""
    cache_key = dataset.sha256 or f"dataset-{dataset.id}"
    root = ctx.work_dir / "datasets" / cache_key
    if (root / COMPLETE_MARK).exists():
        return root / "data"
    tmp = ctx.work_dir / "datasets" / f".{cache_key}.{uuid.uuid4().hex[:8]}"
    try:
        unpack_archive(ctx, dataset.archive_key, tmp / "data")
        (tmp / COMPLETE_MARK).touch()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists() and not (root / COMPLETE_MARK).exists():
        shutil.rmtree(root, ignore_errors=True)  # a crashed earlier copy
    _publish(tmp, root)
    return root / "data"


def _cached_blob(
    ctx: WorkerContext, key: str, *, folder: str, cache_key: str, fallback: str
) -> Path:
    """The blob `key` as a local file under `folder/cache_key/` (named as the key, else
    `fallback`), downloaded once and atomically."""
    name = PurePosixPath(key).name or fallback
    path = ctx.work_dir / folder / cache_key / name
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}")
    try:
        ctx.blobs.download(key, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def teacher_file(ctx: WorkerContext, teacher: Teacher) -> Path:
    """The teacher checkpoint as a local file (its name keeps the uploaded suffix)."""
    if not teacher.checkpoint_key:
        raise ValueError(f"teacher {teacher.id} has no checkpoint")
    cache_key = teacher.sha256 or f"teacher-{teacher.id}"
    return _cached_blob(
        ctx, teacher.checkpoint_key, folder="teachers", cache_key=cache_key, fallback="checkpoint"
    )


def backbone_file(ctx: WorkerContext, backbone: Backbone) -> Path:
    """Uploaded backbone weights as a local file (its name keeps the uploaded suffix)."""
    if not backbone.weights_key:
        raise ValueError(f"backbone {backbone.id} has no weights file")
    cache_key = backbone.sha256 or f"backbone-{backbone.id}"
    return _cached_blob(
        ctx, backbone.weights_key, folder="backbones", cache_key=cache_key, fallback="weights"
    )

"""Validation of uploads: a dataset archive (unpacked safely, checked), a teacher checkpoint and
backbone weights.

A validation always ends: whatever goes wrong while checking (a bug, RecursionError,
MemoryError, a broken file that trips a library) marks the row `invalid` with a message that
holds neither a traceback nor a path of this machine; the traceback goes to the log. Rows
stuck in `validating` all the same (a killed worker) are failed by the reaper's watchdog
(`store.repositories.fail_stale_validations`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from store import repositories as repo
from store.db import session_scope
from worker.context import WorkerContext
from worker.workspace import unpack_archive

log = logging.getLogger(__name__)

Status = Literal["ready", "invalid", "skipped"]


def issue(message: str, *, file: str | None = None, **extra: Any) -> dict[str, Any]:
    """One validation error as stored in a row's `errors` (the shape of ValidationIssue)."""
    return {"file": file, "image_id": None, "annotation_id": None, "message": message, **extra}


def unexpected_failure(what: str, exc: BaseException) -> dict[str, Any]:
    """The error recorded when checking an upload failed unexpectedly: its kind, no details."""
    return issue(
        f"the {what} could not be validated ({type(exc).__name__}); check the file and upload "
        "again, or report this if it persists"
    )


def _scrubbed(errors: list[dict[str, Any]], *folders: Path) -> list[dict[str, Any]]:
    """`errors` with the absolute spellings of `folders` cut from every file and message."""
    from core.data.paths import scrub_paths

    out = []
    for error in errors:
        error = dict(error)
        for key in ("file", "message"):
            if isinstance(error.get(key), str):
                error[key] = scrub_paths(error[key], *folders)
        out.append(error)
    return out


def validate_dataset(ctx: WorkerContext, dataset_id: int) -> Status:
    """Unpack and check an uploaded dataset; mark it ready (statistics) or invalid (errors)."""
    from core.data.archive import ArchiveError
    from core.data.validate import validate_dataset as check_dataset

    with session_scope(ctx.sessions) as session:
        dataset = repo.dataset_by_id(session, dataset_id=dataset_id)
        if dataset is None or dataset.status != "validating":
            return "skipped"  # deleted, or validated by an earlier delivery
        archive_key, data_format = dataset.archive_key, dataset.format
    statistics: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix="validate-") as tmp:
        try:
            root = unpack_archive(ctx, archive_key, Path(tmp) / "data")
            report = check_dataset(root, format=data_format)  # type: ignore[arg-type]
            errors = [e.to_dict() for e in report.errors]
            statistics = report.statistics
        except ArchiveError as exc:
            errors = [issue(str(exc), file=PurePosixPath(archive_key).name)]
        except ValueError as exc:
            errors = [issue(str(exc))]
        except FileNotFoundError:
            errors = [issue("the uploaded archive is missing from the blob store; upload again")]
        except Exception as exc:  # anything else still ends the validation (not KeyboardInterrupt)
            log.exception("dataset %s: validation failed unexpectedly", dataset_id)
            errors, statistics = [unexpected_failure("dataset", exc)], None
        errors = _scrubbed(errors, Path(tmp), ctx.work_dir)
    status: Status = "invalid" if errors else "ready"
    with session_scope(ctx.sessions) as session:
        repo.set_dataset_validation(
            session,
            dataset_id=dataset_id,
            status=status,
            statistics=statistics,
            errors=errors or None,
        )
    log.info("dataset %s: %s (%d errors)", dataset_id, status, len(errors))
    return status


def validate_teacher(ctx: WorkerContext, teacher_id: int) -> Status:
    """Load an uploaded checkpoint safely and strictly against its declared architecture."""
    from core.models.teachers import check_teacher_checkpoint

    with session_scope(ctx.sessions) as session:
        teacher = repo.teacher_by_id(session, teacher_id=teacher_id)
        if teacher is None or teacher.status != "validating":
            return "skipped"
        key, arch = teacher.checkpoint_key, teacher.arch
        fpn_channels, num_classes = teacher.fpn_channels, teacher.num_classes
    errors: list[dict[str, Any]]
    info: dict[str, Any]
    classes: int | None
    if not key:
        errors, info, classes = [issue("no checkpoint was uploaded")], {}, None
    else:
        name = PurePosixPath(key).name or "checkpoint"
        with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix="teacher-") as tmp:
            path = Path(tmp) / name
            try:
                ctx.blobs.download(key, path)
            except FileNotFoundError:
                message = "the uploaded checkpoint is missing from the blob store; upload again"
                errors, info, classes = [issue(message, file=name)], {}, None
            except Exception as exc:  # anything else still ends the validation
                log.exception("teacher %s: downloading the checkpoint failed", teacher_id)
                errors, info, classes = [unexpected_failure("checkpoint", exc)], {}, None
            else:
                try:
                    check = check_teacher_checkpoint(
                        path,
                        name=name,
                        arch=arch,
                        fpn_channels=fpn_channels,
                        num_classes=num_classes,
                    )
                    errors, info, classes = check.errors, check.info, check.num_classes
                except Exception as exc:  # anything else still ends the validation
                    log.exception("teacher %s: validation failed unexpectedly", teacher_id)
                    errors, info, classes = [unexpected_failure("checkpoint", exc)], {}, None
            errors = _scrubbed(errors, Path(tmp), ctx.work_dir)
    status: Status = "invalid" if errors else "ready"
    with session_scope(ctx.sessions) as session:
        repo.set_teacher_validation(
            session,
            teacher_id=teacher_id,
            status=status,
            errors=errors or None,
            info=info or None,
            num_classes=classes,
        )
    log.info("teacher %s: %s", teacher_id, status)
    return status


def validate_backbone(ctx: WorkerContext, backbone_id: int) -> Status:
    """Load uploaded backbone weights safely and strictly into their declared trunk."""
    from core.models.backbones import check_backbone_weights

    with session_scope(ctx.sessions) as session:
        backbone = repo.backbone_by_id(session, backbone_id=backbone_id)
        if backbone is None or backbone.status != "validating":
            return "skipped"
        key, arch = backbone.weights_key, backbone.arch
        # Messages name the file as uploaded (the API keeps its name in `info`), not the blob.
        file = str((backbone.info or {}).get("file") or PurePosixPath(key or "weights").name)
    errors: list[dict[str, Any]]
    info: dict[str, Any] = {"file": file}
    if not key:
        errors = [issue("no weights file was uploaded", file=file)]
    else:
        with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix="backbone-") as tmp:
            path = Path(tmp) / (PurePosixPath(key).name or "weights")
            try:
                ctx.blobs.download(key, path)
                check = check_backbone_weights(path, name=file, arch=arch)
                errors, info = check.errors, {**info, **check.info}
            except FileNotFoundError:
                message = "the uploaded weights are missing from the blob store; upload again"
                errors = [issue(message, file=file)]
            except Exception as exc:  # anything else still ends the validation
                log.exception("backbone %s: validation failed unexpectedly", backbone_id)
                errors = [unexpected_failure("weights file", exc)]
            errors = _scrubbed(errors, Path(tmp), ctx.work_dir)
    status: Status = "invalid" if errors else "ready"
    with session_scope(ctx.sessions) as session:
        repo.set_backbone_validation(
            session, backbone_id=backbone_id, status=status, errors=errors or None, info=info
        )
    log.info("backbone %s: %s", backbone_id, status)
    return status

"""Teachers: streamed checkpoint upload with its architecture, validation by a worker."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, get_args

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import (
    BlobsDep,
    CurrentTeam,
    PageDep,
    QueueDep,
    SessionDep,
    SettingsDep,
    TeamContext,
    WriterTeam,
)
from api.errors import FieldError, conflict, not_found
from api.filetypes import CHECKPOINT_SUFFIXES, sniff_checkpoint
from api.ingest import commit_upload
from api.queue import TaskQueue
from api.schemas import TeacherPublic, TeachersPublic
from api.uploads import ReceivedUpload, multipart_openapi, receive_upload
from core.spec import TeacherArch, TeacherSpec
from store import repositories as repo
from store.blobs import BlobStore
from store.models import TEACHER_STATES, Job

router = APIRouter(prefix="/teachers", tags=["teachers"])

TEACHER_ARCHS: tuple[str, ...] = get_args(TeacherArch)
FPN_MIN, FPN_MAX = 8, 1024  # the bounds of core.spec.TeacherSpec.fpn_channels
FPN_DEFAULT: int = TeacherSpec.model_fields["fpn_channels"].default

_UPLOAD_DOC = multipart_openapi(
    "file",
    {
        "name": {"type": "string", "maxLength": 200, "description": "default: the file name"},
        "arch": {"type": "string", "enum": list(TEACHER_ARCHS)},
        "fpn_channels": {
            "type": "integer",
            "minimum": FPN_MIN,
            "maximum": FPN_MAX,
            "default": FPN_DEFAULT,
        },
    },
)


def _arch(fields: dict[str, str]) -> str:
    arch = fields.get("arch", "").strip()
    if not arch:
        raise FieldError(422, ["body", "arch"], "the teacher's architecture is required")
    if arch not in TEACHER_ARCHS:
        raise FieldError(
            422, ["body", "arch"], f"{arch!r} is not one of {', '.join(TEACHER_ARCHS)}"
        )
    return arch


def _fpn_channels(fields: dict[str, str]) -> int:
    raw = fields.get("fpn_channels", "").strip()
    if not raw:
        return FPN_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise FieldError(422, ["body", "fpn_channels"], f"{raw!r} is not an integer") from None
    if not FPN_MIN <= value <= FPN_MAX:
        raise FieldError(
            422, ["body", "fpn_channels"], f"{value} is not between {FPN_MIN} and {FPN_MAX}"
        )
    return value


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TeacherPublic,
    openapi_extra=_UPLOAD_DOC,
    responses={
        413: {"description": "the file is larger than max_upload_bytes"},
        415: {"description": "the file is no safetensors or torch checkpoint"},
    },
)
async def upload_teacher(
    request: Request,
    team: WriterTeam,
    session: SessionDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    queue: QueueDep,
) -> TeacherPublic:
    """Upload a teacher checkpoint (.safetensors, .pt, .pth); a worker checks it."""
    upload = await receive_upload(
        request,
        file_field="file",
        max_bytes=settings.max_upload_bytes,
        tmp_dir=settings.data_dir / "tmp",
    )
    try:
        arch = _arch(upload.fields)
        fpn_channels = _fpn_channels(upload.fields)
        filename = PurePath(upload.filename).name
        suffix = PurePath(filename).suffix.lower()
        if suffix not in CHECKPOINT_SUFFIXES:
            raise FieldError(
                422,
                ["body", "file"],
                f"{filename!r}: a checkpoint must end in {', '.join(CHECKPOINT_SUFFIXES)}",
            )
        if upload.size == 0:
            raise FieldError(422, ["body", "file"], f"{filename!r} is empty")
        kind = sniff_checkpoint(upload.head)
        if kind is None or (suffix == ".safetensors") != (kind == "safetensors"):
            raise FieldError(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                ["body", "file"],
                f"{filename!r} is not a {suffix} checkpoint (checked its first bytes)",
                type="unsupported_file_type",
            )
        name = upload.fields.get("name", "").strip() or PurePath(filename).stem
        if len(name) > 200:
            raise FieldError(422, ["body", "name"], "at most 200 characters")
        return await run_in_threadpool(
            _store_teacher, session, blobs, queue, team, upload, name, arch, fpn_channels, suffix
        )
    finally:
        upload.discard()


def _store_teacher(
    session: Session,
    blobs: BlobStore,
    queue: TaskQueue,
    team: TeamContext,
    upload: ReceivedUpload,
    name: str,
    arch: str,
    fpn_channels: int,
    suffix: str,
) -> TeacherPublic:
    teacher = repo.create_teacher(
        session,
        team_id=team.id,
        created_by=team.user.id,
        name=name,
        arch=arch,
        checkpoint_key=None,
        fpn_channels=fpn_channels,
        size_bytes=upload.size,
        sha256=upload.sha256,
    )
    teacher.checkpoint_key = f"teachers/{team.id}/{teacher.id}/checkpoint{suffix}"
    session.flush()
    public = TeacherPublic.model_validate(teacher)
    teacher_id = teacher.id
    commit_upload(
        session,
        blobs,
        upload,
        key=teacher.checkpoint_key,
        enqueue=lambda: queue.validate_teacher(teacher_id),
        undo_row=lambda: repo.delete_teacher(session, team_id=team.id, teacher_id=teacher_id),
    )
    return public


@router.get("", response_model=TeachersPublic)
def list_teachers(
    team: CurrentTeam,
    session: SessionDep,
    page: PageDep,
    status_: Annotated[
        str | None, Query(alias="status", description="validating|ready|invalid")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
) -> TeachersPublic:
    """The team's teachers, newest first."""
    if status_ is not None and status_ not in TEACHER_STATES:
        raise FieldError(422, ["query", "status"], f"not one of {', '.join(TEACHER_STATES)}")
    rows, count = repo.list_teachers(
        session, team_id=team.id, status=status_, q=q, limit=page.limit, offset=page.offset
    )
    return TeachersPublic(data=[TeacherPublic.model_validate(r) for r in rows], count=count)


@router.get("/{teacher_id}", response_model=TeacherPublic)
def get_teacher(teacher_id: int, team: CurrentTeam, session: SessionDep) -> TeacherPublic:
    """One teacher with its validation outcome (missing/unexpected keys on failure)."""
    teacher = repo.get_teacher(session, team_id=team.id, teacher_id=teacher_id)
    if teacher is None:
        raise not_found("teacher", teacher_id)
    return TeacherPublic.model_validate(teacher)


@router.delete("/{teacher_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_teacher(
    teacher_id: int, team: WriterTeam, session: SessionDep, blobs: BlobsDep
) -> Response:
    """Delete a teacher and its checkpoint (409 while a queued or running job uses it)."""
    teacher = repo.get_teacher(session, team_id=team.id, teacher_id=teacher_id)
    if teacher is None:
        raise not_found("teacher", teacher_id)
    team.require_owner_or_admin(teacher.created_by, "teacher")
    busy = session.scalars(
        select(Job.id).where(Job.teacher_id == teacher_id, Job.state.in_(("queued", "running")))
    ).first()
    if busy is not None:
        raise conflict(f"teacher {teacher_id} is used by job {busy}, which is not finished")
    key = teacher.checkpoint_key
    repo.delete_teacher(session, team_id=team.id, teacher_id=teacher_id)
    session.commit()
    # After the commit: a blob without a row is garbage, a row without its blob is broken.
    if key:
        blobs.delete(key)
    blobs.delete_prefix(f"teachers/{team.id}/{teacher_id}/")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

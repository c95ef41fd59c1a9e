"""Teachers: streamed checkpoint upload with its architecture, validation by a worker."""

from __future__ import annotations

from pathlib import PurePath
from typing import get_args

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.checkpoint_uploads import checked_checkpoint
from api.deps import (
    BlobsDep,
    CurrentTeam,
    PageDep,
    QueueDep,
    RowId,
    SessionDep,
    SettingsDep,
    TeamContext,
    WriterTeam,
)
from api.errors import FieldError
from api.filters import NameFilter, StatusFilter
from api.ingest import (
    check_name,
    commit_new_row,
    received_file,
)
from api.queue import TaskQueue
from api.schemas import TeacherPublic, TeachersPublic
from api.uploaded import check_status, delete_uploaded, found
from api.uploads import ReceivedUpload, multipart_openapi
from core.spec import TeacherArch, TeacherSpec
from store import repositories as repo
from store.blob_keys import teacher_checkpoint_key
from store.blobs import BlobStore
from store.db import Session
from store.models import TEACHER_STATES

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
        422: {"description": "a bad field, or a torch file that pickles more than tensors"},
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
    async with received_file(request, settings) as upload:
        arch = _arch(upload.fields)
        fpn_channels = _fpn_channels(upload.fields)
        filename = PurePath(upload.filename).name
        suffix = await checked_checkpoint(upload, "a checkpoint")
        name = check_name(upload.fields.get("name", "").strip() or PurePath(filename).stem)
        return await run_in_threadpool(
            _store_teacher, session, blobs, queue, team, upload, name, arch, fpn_channels, suffix
        )


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
    key = teacher_checkpoint_key(team.id, teacher.id, suffix)
    teacher.checkpoint_key = key
    return commit_new_row(
        session,
        blobs,
        upload,
        teacher,
        key=key,
        public=TeacherPublic.model_validate,
        enqueue=queue.validate_teacher,
        undo_row=lambda row_id: repo.delete_teacher(session, team_id=team.id, teacher_id=row_id),
    )


@router.get("", response_model=TeachersPublic)
def list_teachers(
    team: CurrentTeam,
    session: SessionDep,
    page: PageDep,
    status_: StatusFilter = None,
    q: NameFilter = None,
) -> TeachersPublic:
    """The team's teachers, newest first."""
    check_status(status_, TEACHER_STATES)
    rows, count = repo.list_teachers(
        session, team_id=team.id, status=status_, q=q, limit=page.limit, offset=page.offset
    )
    return TeachersPublic(data=[TeacherPublic.model_validate(r) for r in rows], count=count)


@router.get("/{teacher_id}", response_model=TeacherPublic)
def get_teacher(teacher_id: RowId, team: CurrentTeam, session: SessionDep) -> TeacherPublic:
    """One teacher with its validation outcome (missing/unexpected keys on failure)."""
    teacher = repo.get_teacher(session, team_id=team.id, teacher_id=teacher_id)
    return TeacherPublic.model_validate(found(teacher, "teacher", teacher_id))


@router.delete("/{teacher_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_teacher(
    teacher_id: RowId, team: WriterTeam, session: SessionDep, blobs: BlobsDep
) -> Response:
    """Delete a teacher and its checkpoint (409 while a queued or running job uses it)."""
    teacher = found(
        repo.get_teacher(session, team_id=team.id, teacher_id=teacher_id), "teacher", teacher_id
    )
    return delete_uploaded(
        session,
        blobs,
        team,
        teacher,
        resource="teacher",
        row_id=teacher_id,
        key=teacher.checkpoint_key,
        delete_row=lambda: repo.delete_teacher(session, team_id=team.id, teacher_id=teacher_id),
    )

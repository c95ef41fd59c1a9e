"""Backbones: uploaded ImageNet trunk weights that a spec picks by `backbone_id`."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, get_args

from fastapi import APIRouter, Query, Request, status
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
from api.schemas import BackbonePublic, BackbonesPublic
from api.uploaded import check_status, found
from api.uploads import ReceivedUpload, multipart_openapi
from core.spec import BackboneArch
from store import repositories as repo
from store.blob_keys import backbone_weights_key
from store.blobs import BlobStore
from store.db import Session
from store.models import BACKBONE_STATES

router = APIRouter(prefix="/backbones", tags=["backbones"])

BACKBONE_ARCHS: tuple[str, ...] = get_args(BackboneArch)

_UPLOAD_DOC = multipart_openapi(
    "file",
    {
        "name": {"type": "string", "maxLength": 200, "description": "default: the file name"},
        "arch": {
            "type": "string",
            "enum": list(BACKBONE_ARCHS),
            "description": "the trunk the weights belong to (torchvision's ImageNet classifier)",
        },
    },
)


def _arch(fields: dict[str, str]) -> str:
    arch = fields.get("arch", "").strip()
    if not arch:
        raise FieldError(422, ["body", "arch"], "the backbone's architecture is required")
    if arch not in BACKBONE_ARCHS:
        raise FieldError(
            422, ["body", "arch"], f"{arch!r} is not one of {', '.join(BACKBONE_ARCHS)}"
        )
    return arch


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BackbonePublic,
    openapi_extra=_UPLOAD_DOC,
    responses={
        413: {"description": "the file is larger than max_upload_bytes"},
        415: {"description": "the file is no safetensors or torch checkpoint"},
        422: {"description": "a bad field, or a torch file that pickles more than tensors"},
    },
)
async def upload_backbone(
    request: Request,
    team: WriterTeam,
    session: SessionDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    queue: QueueDep,
) -> BackbonePublic:
    """Upload backbone weights (.safetensors, .pt, .pth) for `arch`; a worker checks them."""
    async with received_file(request, settings) as upload:
        arch = _arch(upload.fields)
        filename = PurePath(upload.filename).name
        suffix = await checked_checkpoint(upload, "backbone weights")
        name = check_name(upload.fields.get("name", "").strip() or PurePath(filename).stem)
        return await run_in_threadpool(
            _store_backbone, session, blobs, queue, team, upload, name, arch, suffix, filename
        )


def _store_backbone(
    session: Session,
    blobs: BlobStore,
    queue: TaskQueue,
    team: TeamContext,
    upload: ReceivedUpload,
    name: str,
    arch: str,
    suffix: str,
    filename: str,
) -> BackbonePublic:
    backbone = repo.create_backbone(
        session,
        team_id=team.id,
        created_by=team.user.id,
        name=name,
        arch=arch,
        weights_key=None,
        size_bytes=upload.size,
        sha256=upload.sha256,
        info={"file": filename},
    )
    key = backbone_weights_key(team.id, backbone.id, suffix)
    backbone.weights_key = key
    return commit_new_row(
        session,
        blobs,
        upload,
        backbone,
        key=key,
        public=BackbonePublic.model_validate,
        enqueue=queue.validate_backbone,
        undo_row=lambda row_id: repo.delete_backbone(session, team_id=team.id, backbone_id=row_id),
    )


ArchFilter = Annotated[str | None, Query(max_length=64, description="only this trunk")]


@router.get("", response_model=BackbonesPublic)
def list_backbones(
    team: CurrentTeam,
    session: SessionDep,
    page: PageDep,
    status_: StatusFilter = None,
    arch: ArchFilter = None,
    q: NameFilter = None,
) -> BackbonesPublic:
    """The team's backbone weights, newest first, with their uploaders."""
    check_status(status_, BACKBONE_STATES)
    if arch is not None and arch not in BACKBONE_ARCHS:
        raise FieldError(422, ["query", "arch"], f"not one of {', '.join(BACKBONE_ARCHS)}")
    rows, count = repo.list_backbones(
        session,
        team_id=team.id,
        status=status_,
        arch=arch,
        q=q,
        limit=page.limit,
        offset=page.offset,
    )
    return BackbonesPublic(data=[BackbonePublic.model_validate(r) for r in rows], count=count)


@router.get("/{backbone_id}", response_model=BackbonePublic)
def get_backbone(backbone_id: RowId, team: CurrentTeam, session: SessionDep) -> BackbonePublic:
    """One backbone with its validation outcome (missing/unexpected keys on failure)."""
    backbone = repo.get_backbone(session, team_id=team.id, backbone_id=backbone_id)
    return BackbonePublic.model_validate(found(backbone, "backbone", backbone_id))

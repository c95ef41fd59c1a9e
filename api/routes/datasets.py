"""Datasets: streamed archive upload, validation by a worker, list, get, delete."""

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
from api.filetypes import sniff_archive
from api.ingest import commit_upload
from api.queue import TaskQueue
from api.schemas import DatasetPublic, DatasetsPublic
from api.uploads import ReceivedUpload, multipart_openapi, receive_upload
from core.spec import DataSpec
from store import repositories as repo
from store.blobs import BlobStore
from store.models import DATASET_STATES, Job

router = APIRouter(prefix="/datasets", tags=["datasets"])

DATASET_FORMATS: tuple[str, ...] = get_args(DataSpec.model_fields["format"].annotation)
ARCHIVE_SUFFIX = {
    "zip": ".zip",
    "tar": ".tar",
    "gzip": ".tar.gz",
    "bzip2": ".tar.bz2",
    "xz": ".tar.xz",
}

_UPLOAD_DOC = multipart_openapi(
    "file",
    {
        "name": {"type": "string", "maxLength": 200, "description": "default: the file name"},
        "format": {"type": "string", "enum": list(DATASET_FORMATS), "default": "auto"},
    },
)


def upload_name(fields: dict[str, str], filename: str) -> str:
    """The `name` field, else the file name without its archive suffixes (422 if too long)."""
    name = fields.get("name", "").strip()
    if not name:
        name = PurePath(filename).name
        for suffix in (".gz", ".bz2", ".xz", ".tar", ".zip", ".tgz"):
            name = name.removesuffix(suffix)
        name = name or "upload"
    if len(name) > 200:
        raise FieldError(422, ["body", "name"], "at most 200 characters")
    return name


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DatasetPublic,
    openapi_extra=_UPLOAD_DOC,
    responses={
        413: {"description": "the file is larger than max_upload_bytes"},
        415: {"description": "the file is no zip or tar archive"},
    },
)
async def upload_dataset(
    request: Request,
    team: WriterTeam,
    session: SessionDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    queue: QueueDep,
) -> DatasetPublic:
    """Upload a COCO or VOC dataset archive (zip or tar); a worker validates it."""
    upload = await receive_upload(
        request,
        file_field="file",
        max_bytes=settings.max_upload_bytes,
        tmp_dir=settings.data_dir / "tmp",
    )
    try:
        name = upload_name(upload.fields, upload.filename)
        fmt = upload.fields.get("format", "auto").strip() or "auto"
        if fmt not in DATASET_FORMATS:
            raise FieldError(
                422, ["body", "format"], f"{fmt!r} is not one of {', '.join(DATASET_FORMATS)}"
            )
        if upload.size == 0:
            raise FieldError(422, ["body", "file"], f"{upload.filename!r} is empty")
        archive = sniff_archive(upload.head)
        if archive is None:
            raise FieldError(
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                ["body", "file"],
                f"{upload.filename!r} is not a zip or tar archive (checked its first bytes)",
                type="unsupported_file_type",
            )
        return await run_in_threadpool(
            _store_dataset, session, blobs, queue, team, upload, name, fmt, ARCHIVE_SUFFIX[archive]
        )
    finally:
        upload.discard()


def _store_dataset(
    session: Session,
    blobs: BlobStore,
    queue: TaskQueue,
    team: TeamContext,
    upload: ReceivedUpload,
    name: str,
    fmt: str,
    suffix: str,
) -> DatasetPublic:
    dataset = repo.create_dataset(
        session,
        team_id=team.id,
        created_by=team.user.id,
        name=name,
        archive_key="",
        format=fmt,
        size_bytes=upload.size,
        sha256=upload.sha256,
    )
    dataset.archive_key = f"datasets/{team.id}/{dataset.id}/archive{suffix}"
    session.flush()
    public = DatasetPublic.model_validate(dataset)
    dataset_id = dataset.id
    commit_upload(
        session,
        blobs,
        upload,
        key=dataset.archive_key,
        enqueue=lambda: queue.validate_dataset(dataset_id),
        undo_row=lambda: repo.delete_dataset(session, team_id=team.id, dataset_id=dataset_id),
    )
    return public


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    team: CurrentTeam,
    session: SessionDep,
    page: PageDep,
    status_: Annotated[
        str | None, Query(alias="status", description="validating|ready|invalid")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
) -> DatasetsPublic:
    """The team's datasets, newest first."""
    if status_ is not None and status_ not in DATASET_STATES:
        raise FieldError(422, ["query", "status"], f"not one of {', '.join(DATASET_STATES)}")
    rows, count = repo.list_datasets(
        session, team_id=team.id, status=status_, q=q, limit=page.limit, offset=page.offset
    )
    return DatasetsPublic(data=[DatasetPublic.model_validate(r) for r in rows], count=count)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: int, team: CurrentTeam, session: SessionDep) -> DatasetPublic:
    """One dataset with its statistics and validation errors."""
    dataset = repo.get_dataset(session, team_id=team.id, dataset_id=dataset_id)
    if dataset is None:
        raise not_found("dataset", dataset_id)
    return DatasetPublic.model_validate(dataset)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    dataset_id: int, team: WriterTeam, session: SessionDep, blobs: BlobsDep
) -> Response:
    """Delete a dataset and its archive (409 while a queued or running job uses it)."""
    dataset = repo.get_dataset(session, team_id=team.id, dataset_id=dataset_id)
    if dataset is None:
        raise not_found("dataset", dataset_id)
    team.require_owner_or_admin(dataset.created_by, "dataset")
    busy = session.scalars(
        select(Job.id).where(Job.dataset_id == dataset_id, Job.state.in_(("queued", "running")))
    ).first()
    if busy is not None:
        raise conflict(f"dataset {dataset_id} is used by job {busy}, which is not finished")
    key = dataset.archive_key
    repo.delete_dataset(session, team_id=team.id, dataset_id=dataset_id)
    session.commit()
    # After the commit: a blob without a row is garbage, a row without its blob is broken.
    if key:
        blobs.delete(key)
    blobs.delete_prefix(f"datasets/{team.id}/{dataset_id}/")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Datasets: streamed archive upload, validation by a worker, list, get, delete."""

from __future__ import annotations

from pathlib import PurePath
from typing import get_args

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

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
from api.filetypes import sniff_archive
from api.filters import NameFilter, StatusFilter
from api.ingest import (
    check_name,
    commit_new_row,
    received_file,
    require_content,
    unsupported_file,
)
from api.queue import TaskQueue
from api.schemas import DatasetPublic, DatasetsPublic
from api.uploaded import check_status, delete_uploaded, found
from api.uploads import ReceivedUpload, multipart_openapi
from core.spec import DataSpec
from store import repositories as repo
from store.blob_keys import dataset_archive_key
from store.blobs import BlobStore
from store.db import Session
from store.models import DATASET_STATES

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
    return check_name(name)


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
    async with received_file(request, settings) as upload:
        name = upload_name(upload.fields, upload.filename)
        fmt = upload.fields.get("format", "auto").strip() or "auto"
        if fmt not in DATASET_FORMATS:
            raise FieldError(
                422, ["body", "format"], f"{fmt!r} is not one of {', '.join(DATASET_FORMATS)}"
            )
        require_content(upload, upload.filename)
        archive = sniff_archive(upload.head)
        if archive is None:
            raise unsupported_file(
                f"{upload.filename!r} is not a zip or tar archive (checked its first bytes)"
            )
        return await run_in_threadpool(
            _store_dataset, session, blobs, queue, team, upload, name, fmt, ARCHIVE_SUFFIX[archive]
        )


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
    dataset.archive_key = dataset_archive_key(team.id, dataset.id, suffix)
    return commit_new_row(
        session,
        blobs,
        upload,
        dataset,
        key=dataset.archive_key,
        public=DatasetPublic.model_validate,
        enqueue=queue.validate_dataset,
        undo_row=lambda row_id: repo.delete_dataset(session, team_id=team.id, dataset_id=row_id),
    )


@router.get("", response_model=DatasetsPublic)
def list_datasets(
    team: CurrentTeam,
    session: SessionDep,
    page: PageDep,
    status_: StatusFilter = None,
    q: NameFilter = None,
) -> DatasetsPublic:
    """The team's datasets, newest first."""
    check_status(status_, DATASET_STATES)
    rows, count = repo.list_datasets(
        session, team_id=team.id, status=status_, q=q, limit=page.limit, offset=page.offset
    )
    return DatasetsPublic(data=[DatasetPublic.model_validate(r) for r in rows], count=count)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: RowId, team: CurrentTeam, session: SessionDep) -> DatasetPublic:
    """One dataset with its statistics and validation errors."""
    dataset = repo.get_dataset(session, team_id=team.id, dataset_id=dataset_id)
    return DatasetPublic.model_validate(found(dataset, "dataset", dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    dataset_id: RowId, team: WriterTeam, session: SessionDep, blobs: BlobsDep
) -> Response:
    """Delete a dataset and its archive (409 while a queued or running job uses it)."""
    dataset = found(
        repo.get_dataset(session, team_id=team.id, dataset_id=dataset_id), "dataset", dataset_id
    )
    return delete_uploaded(
        session,
        blobs,
        team,
        dataset,
        resource="dataset",
        row_id=dataset_id,
        key=dataset.archive_key,
        delete_row=lambda: repo.delete_dataset(session, team_id=team.id, dataset_id=dataset_id),
    )

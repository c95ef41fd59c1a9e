"""A job's artifacts: the list, and downloads (presigned redirect on S3, streamed locally)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, status
from fastapi.responses import RedirectResponse, StreamingResponse

from api.deps import (
    BearerCredentials,
    BlobsDep,
    CurrentTeam,
    RowId,
    SessionDep,
    SettingsDep,
    TeamContext,
    TeamHeader,
)
from api.errors import not_found
from api.routes.jobs import team_job
from api.schemas import ArtifactPublic, ArtifactsPublic, TicketPublic
from api.tickets import TicketQuery, issue_ticket, ticket_or_header_team
from store import repositories as repo
from store.blobs import BlobNotFound
from store.db import Session
from store.models import Artifact

router = APIRouter(prefix="/jobs", tags=["artifacts"])

PRESIGNED_EXPIRES_S = 3600


def content_disposition(name: str) -> str:
    """An attachment header that survives non-ASCII names (RFC 6266 filename*)."""
    filename = PurePosixPath(name).name or "download"
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def download_team(
    job_id: RowId,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    credentials: BearerCredentials,
    x_team_id: TeamHeader = None,
    ticket: TicketQuery = None,
) -> TeamContext:
    """The team of a download: a ticket for this very artifact, or the usual header."""
    return ticket_or_header_team(
        session,
        settings,
        credentials,
        x_team_id,
        ticket,
        purpose="download",
        job_id=job_id,
        name=name,
    )


def team_artifact(session: Session, team: TeamContext, job_id: int, name: str) -> Artifact:
    """The artifact `name` of the team's job, or a 404."""
    team_job(session, team.id, job_id)
    artifact = repo.get_artifact(session, team_id=team.id, job_id=job_id, name=name)
    if artifact is None:
        raise not_found("artifact", name)
    return artifact


@router.get("/{job_id}/artifacts", response_model=ArtifactsPublic)
def list_artifacts(job_id: RowId, team: CurrentTeam, session: SessionDep) -> ArtifactsPublic:
    """The files the job produced (student weights, ONNX, report, pictures, ...)."""
    team_job(session, team.id, job_id)
    rows = repo.list_artifacts(session, team_id=team.id, job_id=job_id)
    return ArtifactsPublic(data=[ArtifactPublic.model_validate(a) for a in rows], count=len(rows))


@router.get(
    "/{job_id}/artifacts/{name:path}",
    response_class=StreamingResponse,
    response_model=None,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "the file"},
        307: {"description": "redirect to a presigned URL of the S3 store"},
        404: {"description": "no such job or artifact"},
    },
)
def download_artifact(
    job_id: RowId,
    name: str,
    team: Annotated[TeamContext, Depends(download_team)],
    session: SessionDep,
    blobs: BlobsDep,
) -> StreamingResponse | RedirectResponse:
    """Download one artifact by name: a presigned redirect on S3, a stream from a local store.

    A browser link that cannot send the Authorization header passes `?ticket=` from
    `POST /jobs/{job_id}/artifacts/{name}/ticket` instead.
    """
    artifact = team_artifact(session, team, job_id, name)
    filename = PurePosixPath(artifact.name).name
    url = blobs.presigned_url(artifact.key, expires=PRESIGNED_EXPIRES_S, filename=filename)
    if url is not None:
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    try:
        size = blobs.size(artifact.key)
        chunks = blobs.open_stream(artifact.key)
    except BlobNotFound:
        raise not_found("artifact file", name) from None
    headers = {
        "Content-Disposition": content_disposition(artifact.name),
        "Content-Length": str(size),
    }
    return StreamingResponse(chunks, media_type=artifact.content_type, headers=headers)


@router.post("/{job_id}/artifacts/{name:path}/ticket", response_model=TicketPublic)
def download_ticket(
    job_id: RowId, name: str, team: CurrentTeam, session: SessionDep, settings: SettingsDep
) -> TicketPublic:
    """A ticket that downloads this one artifact for a minute: `GET .../{name}?ticket=`."""
    artifact = team_artifact(session, team, job_id, name)
    return issue_ticket(settings, team, purpose="download", job_id=job_id, name=artifact.name)

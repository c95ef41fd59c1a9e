"""A job's artifacts: the list, and downloads (presigned redirect on S3, streamed locally)."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import quote

from fastapi import APIRouter, status
from fastapi.responses import RedirectResponse, StreamingResponse

from api.deps import BlobsDep, CurrentTeam, SessionDep
from api.errors import not_found
from api.routes.jobs import team_job
from api.schemas import ArtifactPublic, ArtifactsPublic
from store import repositories as repo
from store.blobs import BlobNotFound

router = APIRouter(prefix="/jobs", tags=["artifacts"])

PRESIGNED_EXPIRES_S = 3600


def content_disposition(name: str) -> str:
    """An attachment header that survives non-ASCII names (RFC 6266 filename*)."""
    filename = PurePosixPath(name).name or "download"
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


@router.get("/{job_id}/artifacts", response_model=ArtifactsPublic)
def list_artifacts(job_id: int, team: CurrentTeam, session: SessionDep) -> ArtifactsPublic:
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
    job_id: int, name: str, team: CurrentTeam, session: SessionDep, blobs: BlobsDep
) -> StreamingResponse | RedirectResponse:
    """Download one artifact by name: a presigned redirect on S3, a stream from a local store."""
    team_job(session, team.id, job_id)
    artifact = repo.get_artifact(session, team_id=team.id, job_id=job_id, name=name)
    if artifact is None:
        raise not_found("artifact", name)
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

"""A job's stored files (student, report, pictures) and their lookup."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import (
    Artifact,
    Job,
)
from store.repositories.common import scoped


def add_artifact(
    session: Session,
    *,
    job_id: int,
    kind: str,
    name: str,
    key: str,
    size_bytes: int = 0,
    sha256: str = "",
    content_type: str = "application/octet-stream",
) -> Artifact:
    """Record a file the job produced; adding the same name again updates the row."""
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"job {job_id} not found")
    artifact = session.scalars(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    ).first()
    if artifact is None:
        artifact = Artifact(team_id=job.team_id, job_id=job_id, name=name)
        session.add(artifact)
    artifact.kind = kind
    artifact.key = key
    artifact.size_bytes = size_bytes
    artifact.sha256 = sha256
    artifact.content_type = content_type
    session.flush()
    return artifact


def list_artifacts(session: Session, *, team_id: int, job_id: int) -> list[Artifact]:
    """The team's job's artifacts by name (empty for another team's job)."""
    stmt = scoped(select(Artifact).where(Artifact.job_id == job_id), Artifact, team_id)
    return list(session.scalars(stmt.order_by(Artifact.kind, Artifact.name)))


def get_artifact(session: Session, *, team_id: int, job_id: int, name: str) -> Artifact | None:
    """The team's job's artifact called `name`, or None."""
    stmt = scoped(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name), Artifact, team_id
    )
    return session.scalars(stmt).first()

"""Jobs: creation, team-scoped reads and lists, cancel, retry and delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import (
    Artifact,
    Job,
    JobEvent,
    MetricPoint,
    Teacher,
    utcnow,
)
from store.repositories.common import StateConflict, affected_rows, like_pattern, paged, scoped
from store.repositories.events import add_event


def create_job(
    session: Session,
    *,
    team_id: int,
    created_by: int | None,
    kind: str,
    spec: dict[str, Any],
    spec_hash: str = "",
    name: str = "",
    dataset_id: int | None = None,
    teacher_id: int | None = None,
    max_attempts: int = 3,
) -> Job:
    """A new `queued` job; the caller commits, then sends `distillery.run_job(job_id)`."""
    job = Job(
        team_id=team_id,
        created_by=created_by,
        kind=kind,
        spec=spec,
        spec_hash=spec_hash,
        name=name,
        dataset_id=dataset_id,
        teacher_id=teacher_id,
        state="queued",
        attempt=0,
        max_attempts=max_attempts,
        cancel_requested=False,
    )
    session.add(job)
    session.flush()
    add_event(session, job_id=job.id, message="Job queued.")
    return job


def get_job(session: Session, *, team_id: int, job_id: int) -> Job | None:
    """The team's job with this id, or None (also for another team's job)."""
    return session.scalars(scoped(select(Job).where(Job.id == job_id), Job, team_id)).first()


def get_jobs(session: Session, *, team_id: int, job_ids: Sequence[int]) -> list[Job]:
    """The team's jobs among `job_ids`, in the order asked (others' and unknown ids omitted)."""
    found = {
        job.id: job
        for job in session.scalars(scoped(select(Job).where(Job.id.in_(job_ids)), Job, team_id))
    }
    return [found[i] for i in job_ids if i in found]


def job_by_id(session: Session, *, job_id: int) -> Job | None:
    """A job by id whatever its team: for workers, which act for the team that queued it."""
    return session.get(Job, job_id, populate_existing=True)


def list_jobs(
    session: Session,
    *,
    team_id: int,
    state: str | Sequence[str] | None = None,
    kind: str | None = None,
    dataset_id: int | None = None,
    created_by: int | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """A page of the team's jobs, newest first, filtered, and the total count of the filter."""
    stmt = scoped(select(Job), Job, team_id)
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        stmt = stmt.where(Job.state.in_(states))
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    if dataset_id is not None:
        stmt = stmt.where(Job.dataset_id == dataset_id)
    if created_by is not None:
        stmt = stmt.where(Job.created_by == created_by)
    if q:
        stmt = stmt.where(Job.name.ilike(like_pattern(q), escape="\\"))
    return paged(session, stmt, (Job.created_at.desc(), Job.id.desc()), limit, offset)


def request_cancel(session: Session, *, team_id: int, job_id: int) -> Job | None:
    """Cancel a job: a queued one at once, a running one cooperatively; None if not found.

    A finished job is returned unchanged.
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    now = utcnow()
    # Conditional updates: a worker may claim or finish the job between our read and write.
    canceled_now = affected_rows(
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(
                state="canceled",
                cancel_requested=True,
                finished_at=now,
                updated_at=now,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if canceled_now:
        add_event(session, job_id=job_id, message="Job canceled before it started.")
    else:
        requested = affected_rows(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "running", Job.cancel_requested.is_(False))
                .values(cancel_requested=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        if requested:
            add_event(session, job_id=job_id, message="Cancellation requested.")
    session.flush()
    session.refresh(job)
    return job


def retry_job(session: Session, *, team_id: int, job_id: int, attempts: int = 3) -> Job | None:
    """Queue a failed or canceled job again with `attempts` more tries; None if not found.

    Raises StateConflict for a job that is queued, running or succeeded. The caller commits,
    then sends `distillery.run_job(job_id)`. The last checkpoint is kept: the new attempt
    resumes from it.
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    if job.state not in ("failed", "canceled"):
        raise StateConflict(f"job {job_id} is {job.state}; only failed or canceled jobs retry")
    now = utcnow()
    job.state = "queued"
    job.cancel_requested = False
    job.error = None
    job.worker_id = None
    job.lease_expires_at = None
    job.heartbeat_at = None
    job.finished_at = None
    job.max_attempts = job.attempt + attempts
    job.updated_at = now
    session.flush()
    add_event(session, job_id=job_id, message="Job queued again (retry).")
    return job


# `retry` is the name the platform issue uses; both spellings refer to one function.
retry = retry_job


def delete_job(session: Session, *, team_id: int, job_id: int) -> Job | None:
    """Delete the team's job with its metrics, events and artifact rows; its row or None.

    Raises StateConflict while the job runs (cancel it first). Blobs are the caller's to
    delete (list the artifacts before).
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    if job.state == "running":
        raise StateConflict(f"job {job_id} is running; cancel it first")
    # Bulk deletes: the ORM would load every metric point to delete it one by one.
    for model in (MetricPoint, JobEvent, Artifact):
        session.execute(
            model.__table__.delete().where(model.__table__.c.job_id == job_id)  # type: ignore[attr-defined]
        )
    session.execute(
        update(Teacher).where(Teacher.source_job_id == job_id).values(source_job_id=None)
    )
    session.delete(job)
    session.flush()
    return job


def restore_queued_job(session: Session, *, job_id: int, fields: Mapping[str, Any]) -> bool:
    """Put back `fields` of a job still queued (a retry whose message could not be sent).

    Conditional: a worker that took the job meanwhile keeps it. True if the row was changed.
    """
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state == "queued").values(**fields)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]

"""Leases: the job row decides which worker runs a job (atomic, committed at once)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from store.models import (
    TERMINAL_JOB_STATES,
    Job,
    utcnow,
)
from store.repositories.common import affected_rows, expunge_job
from store.repositories.events import add_event


def claim_job(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> Job | None:
    """Take the job for `worker_id` (commits); None if a live lease holds it or it is finished.

    A queued job, or a running one whose lease expired (attempts left), is claimed by one
    atomic UPDATE: of two workers racing, exactly one gets the row.
    """
    now = now or utcnow()
    claimable = or_(
        Job.state == "queued",
        (Job.state == "running") & (Job.lease_expires_at < now) & (Job.attempt < Job.max_attempts),
    )
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, claimable, Job.cancel_requested.is_(False))
        .values(
            state="running",
            worker_id=worker_id,
            attempt=Job.attempt + 1,
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Job.started_at, now),
            error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    expunge_job(session, job_id)
    if affected_rows(result) != 1:
        session.commit()
        return None
    job = session.get(Job, job_id, populate_existing=True)
    if job is not None:
        # In the claim's own transaction: the event exists if and only if the claim does.
        add_event(
            session,
            job_id=job_id,
            message=f"Started on worker {worker_id} (attempt {job.attempt} of {job.max_attempts}).",
        )
    session.commit()
    return job


def renew_lease(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> bool:
    """Extend the worker's lease (commits); False if it lost the lease or cancel was requested."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.worker_id == worker_id,
            Job.state == "running",
            Job.cancel_requested.is_(False),
        )
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    expunge_job(session, job_id)
    session.commit()
    return affected_rows(result) == 1


def holds_lease(session: Session, *, job_id: int, worker_id: str) -> bool:
    """Whether `worker_id` still holds the running job's lease (cancellation aside)."""
    row = session.execute(
        select(Job.id).where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
    ).first()
    return row is not None


def cancel_requested(session: Session, *, job_id: int) -> bool:
    """Whether someone asked to cancel the job (True also for a vanished job)."""
    value = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar()
    return True if value is None else bool(value)


def set_progress(
    session: Session, *, job_id: int, worker_id: str, progress: dict[str, Any]
) -> bool:
    """Store the running job's progress (commits); False when the worker lost the lease."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
        .values(progress=progress, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    expunge_job(session, job_id)
    session.commit()
    return affected_rows(result) == 1


def set_checkpoint(session: Session, *, job_id: int, worker_id: str, key: str) -> bool:
    """Record the blob key of the job's latest checkpoint (commits); False without the lease."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
        .values(checkpoint_key=key, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    expunge_job(session, job_id)
    session.commit()
    return affected_rows(result) == 1


def finish_job(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    state: str,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Move the worker's running job to a terminal state (commits); False without the lease."""
    if state not in TERMINAL_JOB_STATES:
        raise ValueError(f"state: {state!r} is not one of {', '.join(TERMINAL_JOB_STATES)}")
    now = now or utcnow()
    values: dict[str, Any] = {
        "state": state,
        "error": error,
        "finished_at": now,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if metrics is not None:
        values["metrics"] = metrics
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    expunge_job(session, job_id)
    finished = affected_rows(result) == 1
    if finished:
        message = {
            "succeeded": "Job succeeded.",
            "canceled": "Job canceled.",
            "failed": f"Job failed: {error}" if error else "Job failed.",
        }[state]
        add_event(
            session, job_id=job_id, message=message, level="error" if state == "failed" else "info"
        )
    session.commit()
    return finished


def requeue_expired(session: Session, *, now: datetime | None = None) -> list[int]:
    """Re-queue running jobs whose lease expired (commits); the ids to send again.

    A job without attempts left is marked failed with the reason; one whose cancellation was
    requested is marked canceled.
    """
    now = now or utcnow()
    expired = session.execute(
        select(Job.id, Job.attempt, Job.max_attempts, Job.worker_id, Job.cancel_requested).where(
            Job.state == "running", Job.lease_expires_at < now
        )
    ).all()
    requeued: list[int] = []
    for job_id, attempt, max_attempts, worker_id, cancel in expired:
        still_expired = (Job.id == job_id, Job.state == "running", Job.lease_expires_at < now)
        released = {"worker_id": None, "lease_expires_at": None, "updated_at": now}
        lost = f"worker {worker_id} stopped renewing its lease"
        if cancel:
            values = {**released, "state": "canceled", "finished_at": now}
            message, level = f"Job canceled ({lost}).", "info"
        elif attempt < max_attempts:
            values = {**released, "state": "queued"}
            message = f"Re-queued: {lost} during attempt {attempt} of {max_attempts}."
            level = "warning"
        else:
            reason = f"{lost}; no attempts left ({attempt} of {max_attempts})"
            values = {**released, "state": "failed", "finished_at": now, "error": reason}
            message, level = f"Job failed: {reason}.", "error"
        # Conditional again: the worker may have renewed or finished since the select.
        result = session.execute(
            update(Job)
            .where(*still_expired)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        expunge_job(session, job_id)
        if affected_rows(result) == 1:
            add_event(session, job_id=job_id, message=message, level=level)
            if values["state"] == "queued":
                requeued.append(job_id)
        session.commit()
    return requeued


def stale_queued_jobs(session: Session, *, older_than: datetime) -> list[int]:
    """Ids of jobs still queued since before `older_than` (their broker message may be lost)."""
    return list(
        session.scalars(
            select(Job.id)
            .where(Job.state == "queued", Job.updated_at < older_than)
            .order_by(Job.id)
        )
    )


def take_stale_queued_jobs(
    session: Session, *, older_than: datetime, now: datetime | None = None
) -> list[int]:
    """Stale queued jobs, each marked as sent again now (commits); the ids to send.

    Marking bounds the resends to one per staleness period, however long a job waits; a
    duplicate message is harmless because the lease drops it.
    """
    now = now or utcnow()
    taken: list[int] = []
    for job_id in stale_queued_jobs(session, older_than=older_than):
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued", Job.updated_at < older_than)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if affected_rows(result) == 1:
            taken.append(job_id)
    session.commit()
    return taken

"""A job's event log (what the job page and `distillery follow` show)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import (
    JobEvent,
)


def add_event(session: Session, *, job_id: int, message: str, level: str = "info") -> JobEvent:
    """Append a log line or state change, in words a user understands, to the job's events."""
    event = JobEvent(job_id=job_id, message=message, level=level)
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session, *, job_id: int, since_id: int | None = None, limit: int | None = None
) -> list[JobEvent]:
    """The job's events in order, optionally only those after `since_id`."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id)
    if since_id is not None:
        stmt = stmt.where(JobEvent.id > since_id)
    stmt = stmt.order_by(JobEvent.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))

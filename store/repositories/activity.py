"""A team's history by user: who submitted, canceled or uploaded what, and when."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Dataset, Job, JobEvent, Membership, Sweep, Teacher, User
from store.repositories.common import scoped
from store.repositories.events import add_event

ACTIVITY_ACTIONS: tuple[str, ...] = (
    "submitted",
    "canceled",
    "uploaded_dataset",
    "uploaded_teacher",
    "started_sweep",
)
"""What an activity entry says a user did."""

CANCELED_BY = "Canceled by {email}."
"""The job event that records who canceled a job (the one place its wording is made and read)."""

_CANCELED_BY = re.compile(r"^Canceled by (?P<email>\S+@\S+)\.$")


@dataclass(frozen=True)
class ActivityEntry:
    """One thing a user did in a team."""

    at: datetime
    action: str
    user_id: int | None
    subject: str  # job | dataset | teacher | sweep
    subject_id: int
    subject_name: str


@dataclass(frozen=True)
class Member:
    """A member of a team, for filters and names."""

    user_id: int
    email: str
    name: str
    role: str


def record_cancel(session: Session, *, job_id: int, email: str) -> JobEvent:
    """Note in the job's events who asked for its cancellation (the activity reads it back)."""
    return add_event(session, job_id=job_id, message=CANCELED_BY.format(email=email))


def team_members(session: Session, *, team_id: int) -> list[Member]:
    """The team's members by e-mail."""
    rows = session.execute(
        select(User.id, User.email, User.name, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.team_id == team_id)
        .order_by(User.email)
    )
    return [Member(user_id, email, name or "", role) for user_id, email, name, role in rows]


def team_activity(
    session: Session, *, team_id: int, user_id: int | None = None, limit: int = 50
) -> list[ActivityEntry]:
    """The team's most recent `limit` entries, newest first, optionally of one user only.

    Jobs submitted and sweeps started (by their creator), datasets and teachers uploaded (by
    their uploader), jobs canceled (by whoever asked, from the `CANCELED_BY` event).
    """
    limit = max(1, limit)
    entries: list[ActivityEntry] = []
    owned: list[tuple[Any, str, str]] = [
        (Job, "submitted", "job"),
        (Dataset, "uploaded_dataset", "dataset"),
        (Teacher, "uploaded_teacher", "teacher"),
    ]
    for model, action, subject in owned:
        stmt = select(model.id, model.name, model.created_by, model.created_at)
        if user_id is not None:
            stmt = stmt.where(model.created_by == user_id)
        stmt = scoped(stmt, model, team_id).order_by(model.created_at.desc(), model.id.desc())
        for row_id, name, creator, at in session.execute(stmt.limit(limit)):
            entries.append(ActivityEntry(at, action, creator, subject, row_id, name or ""))
    sweeps = select(Sweep.id, Sweep.name, Sweep.created_by, Sweep.created_at).where(
        Sweep.team_id == team_id
    )
    if user_id is not None:
        sweeps = sweeps.where(Sweep.created_by == user_id)
    sweeps = sweeps.order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit)
    for row_id, name, creator, at in session.execute(sweeps):
        entries.append(ActivityEntry(at, "started_sweep", creator, "sweep", row_id, name or ""))
    entries.extend(_cancellations(session, team_id=team_id, user_id=user_id, limit=limit))
    entries.sort(key=lambda e: (e.at, ACTIVITY_ACTIONS.index(e.action)), reverse=True)
    return entries[:limit]


def _cancellations(
    session: Session, *, team_id: int, user_id: int | None, limit: int
) -> list[ActivityEntry]:
    stmt = (
        select(JobEvent)
        .join(Job, Job.id == JobEvent.job_id)
        .where(JobEvent.message.like("Canceled by %"))
    )
    if user_id is not None:
        email = session.scalar(select(User.email).where(User.id == user_id))
        if email is None:
            return []
        stmt = stmt.where(JobEvent.message == CANCELED_BY.format(email=email))
    stmt = scoped(stmt, Job, team_id).order_by(JobEvent.id.desc()).limit(limit)
    events = list(session.scalars(stmt))
    names: dict[int, str] = {}
    if events:
        named = select(Job.id, Job.name).where(Job.id.in_({e.job_id for e in events}))
        for job_id, name in session.execute(named):
            names[int(job_id)] = str(name or "")
    found: list[tuple[datetime, str, int, str]] = []
    for event in events:
        match = _CANCELED_BY.match(event.message)
        if match:
            name = names.get(event.job_id, "")
            found.append((event.created_at, match["email"], event.job_id, name))
    emails = sorted({email for _, email, _, _ in found})
    ids: dict[str, int] = {}
    if emails:
        rows = session.execute(select(User.email, User.id).where(User.email.in_(emails)))
        ids = {str(email): int(user_id) for email, user_id in rows}
    return [
        ActivityEntry(at, "canceled", ids.get(email), "job", job_id, name)
        for at, email, job_id, name in found
    ]

"""Live job progress as Server-Sent Events, by polling the database (SQLite or Postgres)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.bounds import MAX_BIG_ID
from api.deps import (
    BearerCredentials,
    CurrentTeam,
    RowId,
    SessionDep,
    SettingsDep,
    TeamContext,
    TeamHeader,
)
from api.routes.jobs import team_job
from api.schemas import TicketPublic
from api.tickets import TicketQuery, issue_ticket, ticket_or_header_team
from store import repositories as repo
from store.db import Session, sessionmaker
from store.models import TERMINAL_JOB_STATES, Job

router = APIRouter(prefix="/jobs", tags=["jobs"])

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
BATCH_LIMIT = 2000
"""Rows of one kind read per poll; a backlog is drained over several polls without sleeping."""


@dataclass
class Cursor:
    """How far a client has read: the last metric point id and the last job event id."""

    metric_id: int = 0
    event_id: int = 0

    def encode(self) -> str:
        """The SSE `id:` of the next event, `<metric id>-<event id>`."""
        return f"{self.metric_id}-{self.event_id}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor | None:
        """A cursor from a Last-Event-ID; None when absent or unreadable (start at the end)."""
        if not raw:
            return None
        parts = raw.strip().split("-")
        digits = len(str(MAX_BIG_ID))
        if not 1 <= len(parts) <= 2 or not all(
            p.isascii() and p.isdigit() and len(p) <= digits for p in parts
        ):
            return None
        ids = [int(p) for p in parts]
        if any(i > MAX_BIG_ID for i in ids):
            return None  # no such row: the database's ids end there
        if len(ids) == 2:
            return cls(metric_id=ids[0], event_id=ids[1])
        return cls(event_id=ids[0])


@dataclass
class Snapshot:
    """What one poll found: the job's state and progress, and rows newer than the cursor."""

    state: dict[str, Any] | None
    progress: dict[str, Any] | None = None
    points: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def backlog(self) -> bool:
        """Whether more rows are waiting than one poll reads."""
        return len(self.points) >= BATCH_LIMIT or len(self.events) >= BATCH_LIMIT


def _state_of(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "state": job.state,
        "cancel_requested": job.cancel_requested,
        "attempt": job.attempt,
        "error": job.error,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def end_cursor(factory: sessionmaker[Session], job_id: int) -> Cursor:
    """A cursor past everything the job has written so far."""
    with factory() as session:
        metric_id, event_id = repo.last_written_ids(session, job_id=job_id)
    return Cursor(metric_id=metric_id, event_id=event_id)


def poll(factory: sessionmaker[Session], job_id: int, cursor: Cursor) -> Snapshot:
    """Read the job's state, progress, and the points and events after `cursor`."""
    with factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            return Snapshot(state=None)
        points = repo.metric_points(
            session, job_id=job_id, since_id=cursor.metric_id, limit=BATCH_LIMIT
        )
        events = repo.list_events(
            session, job_id=job_id, since_id=cursor.event_id, limit=BATCH_LIMIT
        )
        return Snapshot(
            state=_state_of(job),
            progress=job.progress,
            points=[
                {
                    "id": p.id,
                    "name": p.name,
                    "step": p.step,
                    "epoch": p.epoch,
                    "value": p.value,
                    "stage": p.stage or job.kind,
                }
                for p in points
            ],
            events=[
                {
                    "id": e.id,
                    "level": e.level,
                    "message": e.message,
                    "created_at": e.created_at.isoformat(),
                }
                for e in events
            ],
        )


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One Server-Sent Event frame."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head + f"data: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


async def job_event_stream(
    request: Request,
    factory: sessionmaker[Session],
    job_id: int,
    cursor: Cursor,
    *,
    interval: float = POLL_SECONDS,
) -> AsyncIterator[str]:
    """Frames `metric`, `log`, `progress` and `state` until a terminal state has been sent."""
    yield "retry: 2000\n\n"
    sent_state: tuple[Any, ...] | None = None
    sent_progress: Any = None
    quiet = 0.0
    while True:
        snap = await run_in_threadpool(poll, factory, job_id, cursor)
        if snap.state is None:
            yield sse("state", {"job_id": job_id, "state": "deleted"}, cursor.encode())
            return
        frames: list[str] = []
        for point in snap.points:
            cursor.metric_id = point.pop("id")
            frames.append(sse("metric", point, cursor.encode()))
        for event in snap.events:
            cursor.event_id = event["id"]
            frames.append(sse("log", event, cursor.encode()))
        # With a backlog the state waits: a terminal state must be the last frame.
        if not snap.backlog:
            if snap.progress and snap.progress != sent_progress:
                sent_progress = snap.progress
                frames.append(sse("progress", snap.progress, cursor.encode()))
            state_key = (snap.state["state"], snap.state["cancel_requested"], snap.state["attempt"])
            if state_key != sent_state:
                sent_state = state_key
                frames.append(sse("state", snap.state, cursor.encode()))
        for frame in frames:
            yield frame
        if not snap.backlog and snap.state["state"] in TERMINAL_JOB_STATES:
            return
        if snap.backlog:
            continue
        quiet = 0.0 if frames else quiet + interval
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(interval)


def stream_team(
    job_id: RowId,
    session: SessionDep,
    settings: SettingsDep,
    credentials: BearerCredentials,
    x_team_id: TeamHeader = None,
    ticket: TicketQuery = None,
) -> TeamContext:
    """The team of a stream request: a ticket for this job's events, or the usual header."""
    return ticket_or_header_team(
        session, settings, credentials, x_team_id, ticket, purpose="events", job_id=job_id
    )


@router.post("/{job_id}/events/ticket", response_model=TicketPublic)
def job_events_ticket(
    job_id: RowId, team: CurrentTeam, session: SessionDep, settings: SettingsDep
) -> TicketPublic:
    """A ticket that opens this job's event stream for a minute: `GET .../events?ticket=`.

    For clients that cannot send the Authorization header (a browser's EventSource).
    """
    team_job(session, team.id, job_id)
    return issue_ticket(settings, team, purpose="events", job_id=job_id)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"}},
)
def job_events(
    job_id: RowId,
    request: Request,
    team: Annotated[TeamContext, Depends(stream_team)],
    session: SessionDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
    from_id: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            description="like the Last-Event-ID header; '0-0' replays the job's whole history",
        ),
    ] = None,
) -> StreamingResponse:
    """Live events of a job: `metric`, `log`, `progress` and `state`.

    The stream ends after a terminal state. It carries new rows only, unless Last-Event-ID
    (or `?last_event_id=`; `0-0` replays everything) says where to resume. EventSource, which
    cannot set headers, passes `?ticket=` from `POST /jobs/{job_id}/events/ticket` instead.
    """
    team_job(session, team.id, job_id)
    factory: sessionmaker[Session] = request.app.state.session_factory
    cursor = Cursor.parse(last_event_id) or Cursor.parse(from_id) or end_cursor(factory, job_id)
    interval: float = getattr(request.app.state, "event_poll_seconds", POLL_SECONDS)
    return StreamingResponse(
        job_event_stream(request, factory, job_id, cursor, interval=interval),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

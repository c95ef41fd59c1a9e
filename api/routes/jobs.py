"""Jobs: create from a spec, list with filters, get, cancel, retry, delete, metrics, logs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, get_args

from fastapi import APIRouter, Query, Request, Response, status

from api.bounds import MAX_BIG_ID, parse_row_id
from api.cursors import MAX_CURSOR_LENGTH, BadCursor, decode_cursor, encode_cursor
from api.deps import (
    BlobsDep,
    CurrentTeam,
    OptionalRowId,
    PageDep,
    QueueDep,
    RowId,
    SessionDep,
    SettingsDep,
    TeamInEndpoint,
    WriterTeam,
)
from api.errors import FieldError, conflict, not_found, unavailable
from api.filters import NameFilter
from api.job_specs import accept_spec
from api.job_summaries import job_summary
from api.queue import QueueUnavailable
from api.schemas import (
    TAG_PATTERN,
    JobCreate,
    JobEventPublic,
    JobEventsPublic,
    JobPatch,
    JobPublic,
    JobsPublic,
    MetricPointPublic,
    MetricSeriesPublic,
)
from core.spec import JobSpec
from store import repositories as repo
from store.blob_keys import job_prefix
from store.db import Session
from store.models import JOB_STATES, TERMINAL_JOB_STATES, Job
from store.repositories.jobs import LIST_METRICS, annotate_job, parse_job_sort

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/jobs", tags=["jobs"])

JOB_KINDS: tuple[str, ...] = get_args(JobSpec.model_fields["kind"].annotation)


def job_publics(session: Session, jobs: Sequence[Job]) -> list[JobPublic]:
    """Jobs as their public shape, each with its creator's e-mail (one query for all)."""
    emails = repo.user_emails(
        session, user_ids=(job.created_by for job in jobs if job.created_by is not None)
    )
    out = []
    for job in jobs:
        public = JobPublic.model_validate(job)
        public.creator_email = emails.get(job.created_by) if job.created_by is not None else None
        out.append(public)
    return out


def job_public(session: Session, job: Job) -> JobPublic:
    """One job as its public shape."""
    return job_publics(session, [job])[0]


def team_job(session: Session, team_id: int, job_id: int) -> Job:
    """The team's job, or a 404 (also for another team's job)."""
    job = repo.get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        raise not_found("job", job_id)
    return job


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobPublic)
def create_job(
    body: JobCreate, team: WriterTeam, session: SessionDep, settings: SettingsDep, queue: QueueDep
) -> JobPublic:
    """Queue a job from a `core.spec` JobSpec; 422 names every field at fault."""
    accepted = accept_spec(session, team_id=team.id, raw=body.spec)
    spec = accepted.spec
    name = (body.name or spec.name or "").strip()
    if not name:
        name = f"{spec.kind} on {accepted.dataset.name}"
    job = repo.create_job(
        session,
        team_id=team.id,
        created_by=team.user.id,
        kind=spec.kind,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.spec_hash(),
        name=name[:200],
        dataset_id=accepted.dataset.id,
        teacher_id=accepted.teacher.id if accepted.teacher is not None else None,
        max_attempts=settings.max_attempts,
    )
    session.commit()
    try:
        queue.run_job(job.id)
    except QueueUnavailable as exc:
        # Nothing half-done stays: the row goes again, the user retries later.
        repo.delete_job(session, team_id=team.id, job_id=job.id)
        session.commit()
        raise unavailable(f"{exc}; the job was not created") from exc
    return job_public(session, job)


BOUND_PARAMS: dict[str, tuple[str, str]] = {
    f"{side}_{metric.lower()}": (metric, side) for metric in LIST_METRICS for side in ("min", "max")
}
"""`min_ap_small=0.1` ... `max_ap=0.5`: query parameters bounding a COCO figure (a fraction)."""


def metric_bounds(request: Request) -> dict[tuple[str, str], float]:
    """The job list's metric bounds from the query (`min_<metric>` / `max_<metric>`).

    Values are fractions 0..1 as in metrics.json (the dashboard shows percent); 422 names the
    parameter for an unknown metric or a value that is not such a fraction.
    """
    bounds: dict[tuple[str, str], float] = {}
    for name, raw in request.query_params.items():
        if not (name.startswith("min_") or name.startswith("max_")):
            continue
        key = BOUND_PARAMS.get(name)
        if key is None:
            raise FieldError(
                422,
                ["query", name],
                f"no such metric bound; use min_/max_ with one of "
                f"{', '.join(m.lower() for m in LIST_METRICS)}",
            )
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value <= 1.0:
            raise FieldError(
                422,
                ["query", name],
                f"{raw!r} is not a fraction between 0 and 1 (AP 12.5 % is 0.125)",
            )
        bounds[key] = value
    return bounds


def _csv(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


@router.get("", response_model=JobsPublic)
def list_jobs(
    request: Request,
    auth: TeamInEndpoint,
    session: SessionDep,
    page: PageDep,
    state: Annotated[
        list[str] | None, Query(description="queued|running|succeeded|failed|canceled, or a list")
    ] = None,
    kind: Annotated[str | None, Query(description="teacher|distill|evaluate")] = None,
    dataset_id: OptionalRowId = None,
    created_by: Annotated[str | None, Query(description="a user id, or 'me'")] = None,
    q: NameFilter = None,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="the `next_cursor` of the previous page: the rows after it",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        Query(
            max_length=40,
            description="`-created_at` (default), `name`, `state`, `kind`, `finished_at`, "
            "`id` or `metric:AP_small` ...; `-` first for descending",
        ),
    ] = None,
    tag: Annotated[
        str | None, Query(max_length=40, pattern=TAG_PATTERN, description="jobs with this tag")
    ] = None,
) -> Response:
    """The team's jobs, newest first, filtered; `count` is the total matching the filters.

    Rows are summaries (`JobSummary`: no spec; `GET /jobs/{id}` has it). Page with
    `?after=<next_cursor>` (keyset: stable while jobs are added, as fast deep in the history)
    or with `?offset=`; `next_cursor` is None on the last page.

    `sort=` orders by a column or a metric (`metric:AP_small`, `-metric:AP`; rows without the
    figure last); only the default order pages by cursor: with another, page by `offset`
    (`after` is refused, `next_cursor` is None). `min_ap_small=0.1`, `max_ap=0.5` ... bound a
    COCO figure (fractions, as in metrics.json); `tag=` keeps the jobs with that tag. All in
    the one statement of the page.
    """
    team = auth.team(session)  # first, in this thread: a 401 or 403 before any query error
    try:
        order = parse_job_sort(sort)
    except ValueError as exc:
        raise FieldError(422, ["query", "sort"], str(exc)) from None
    bounds = metric_bounds(request)
    if after is not None and not order.is_default:
        raise FieldError(
            422, ["query", "after"], "cursors follow the default order only; page with offset"
        )
    states = _csv(state)
    unknown = [s for s in states if s not in JOB_STATES]
    if unknown:
        raise FieldError(
            422, ["query", "state"], f"{unknown[0]!r} is not one of {', '.join(JOB_STATES)}"
        )
    if kind is not None and kind not in JOB_KINDS:
        raise FieldError(422, ["query", "kind"], f"{kind!r} is not one of {', '.join(JOB_KINDS)}")
    creator: int | None = None
    if created_by == "me":
        creator = team.user.id
    elif created_by is not None:
        creator = parse_row_id(created_by)
        if creator is None:
            raise FieldError(
                422, ["query", "created_by"], f"{created_by!r} is not a user id or 'me'"
            )
    position = None
    if after is not None:
        try:
            position = decode_cursor(after)
        except BadCursor:
            raise FieldError(
                422, ["query", "after"], "not a cursor: pass the next_cursor of a job list"
            ) from None
    found = repo.job_page(
        session,
        team_id=team.id,
        state=states or None,
        kind=kind,
        dataset_id=dataset_id,
        created_by=creator,
        q=q,
        limit=page.limit,
        offset=page.offset,
        after=position,
        tag=tag,
        metric_bounds=bounds,
        sort=order,
    )
    page_out = JobsPublic(
        data=[job_summary(row) for row in found.rows],
        count=found.total,
        next_cursor=encode_cursor(*found.next_after) if found.next_after else None,
    )
    # Serialised here: the rows were validated as they were built, and FastAPI would
    # validate the whole page again (in a worker thread of its own) before encoding it.
    return Response(page_out.model_dump_json(), media_type="application/json")


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: RowId, team: CurrentTeam, session: SessionDep) -> JobPublic:
    """One job with its spec, progress and metrics."""
    return job_public(session, team_job(session, team.id, job_id))


@router.patch("/{job_id}", response_model=JobPublic)
def patch_job(job_id: RowId, body: JobPatch, team: WriterTeam, session: SessionDep) -> JobPublic:
    """Set a job's tags (the whole list) and/or its note; 422 names a bad tag."""
    tags = [t.strip() for t in body.tags] if body.tags is not None else None
    job = annotate_job(session, team_id=team.id, job_id=job_id, tags=tags, note=body.note)
    if job is None:
        raise not_found("job", job_id)
    session.commit()
    return job_public(session, job)


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: RowId, team: WriterTeam, session: SessionDep) -> JobPublic:
    """Cancel a job: a queued one at once, a running one at the worker's next step."""
    job = team_job(session, team.id, job_id)
    if job.state in TERMINAL_JOB_STATES:
        raise conflict(f"job {job_id} is already {job.state}")
    job = repo.request_cancel(session, team_id=team.id, job_id=job_id) or job
    repo.record_cancel(session, job_id=job_id, email=team.user.email)  # the team's history
    session.commit()
    return job_public(session, job)


@router.post("/{job_id}/retry", response_model=JobPublic)
def retry_job(job_id: RowId, team: WriterTeam, session: SessionDep, queue: QueueDep) -> JobPublic:
    """Queue a failed or canceled job again; it resumes from its last checkpoint."""
    job = team_job(session, team.id, job_id)
    before = {
        "state": job.state,
        "error": job.error,
        "finished_at": job.finished_at,
        "cancel_requested": job.cancel_requested,
        "max_attempts": job.max_attempts,
    }
    try:
        job = repo.retry_job(session, team_id=team.id, job_id=job_id) or job
    except repo.StateConflict as exc:
        raise conflict(str(exc)) from None
    session.commit()
    try:
        queue.run_job(job_id)
    except QueueUnavailable as exc:
        # Put the job back as it was, unless a worker already picked it up meanwhile.
        repo.restore_queued_job(session, job_id=job_id, fields=before)
        repo.add_event(session, job_id=job_id, message="Retry failed: the queue is unavailable.")
        session.commit()
        raise unavailable(f"{exc}; the job was not queued again") from exc
    return job_public(session, job)


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: RowId, team: WriterTeam, session: SessionDep, blobs: BlobsDep) -> Response:
    """Delete a finished or queued job with its metrics, events and files (409 while running)."""
    job = team_job(session, team.id, job_id)
    team.require_owner_or_admin(job.created_by, "job")
    keys = [a.key for a in repo.list_artifacts(session, team_id=team.id, job_id=job_id)]
    if job.checkpoint_key:
        keys.append(job.checkpoint_key)
    try:
        repo.delete_job(session, team_id=team.id, job_id=job_id)
    except repo.StateConflict as exc:
        raise conflict(str(exc)) from None
    session.commit()
    # After the commit: a blob without a row is garbage, a row without its blob is broken.
    for key in keys:
        blobs.delete(key)
    blobs.delete_prefix(job_prefix(job_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/metrics", response_model=MetricSeriesPublic)
def job_metrics(
    job_id: RowId,
    team: CurrentTeam,
    session: SessionDep,
    names: Annotated[
        list[str] | None, Query(description="series to return (comma-separated or repeated)")
    ] = None,
) -> MetricSeriesPublic:
    """The job's metric series by name (losses per term and level, lr, eval/AP, ...); each
    point carries its stage (the job's kind where none was stored) and its `global_step`, the
    step on one axis across the job's stages in the order they ran."""
    job = team_job(session, team.id, job_id)
    series = repo.metric_series(
        session, job_id=job_id, names=_csv(names) or None, default_stage=job.kind
    )
    return MetricSeriesPublic(
        series={
            name: [MetricPointPublic(**point) for point in points]
            for name, points in series.items()
        }
    )


@router.get("/{job_id}/logs", response_model=JobEventsPublic)
def job_logs(
    job_id: RowId,
    team: CurrentTeam,
    session: SessionDep,
    since_id: Annotated[
        int | None, Query(ge=0, le=MAX_BIG_ID, description="only events after this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> JobEventsPublic:
    """The job's events (state changes and log lines), oldest first."""
    team_job(session, team.id, job_id)
    events = repo.list_events(session, job_id=job_id, since_id=since_id, limit=limit)
    return JobEventsPublic(
        data=[JobEventPublic.model_validate(e) for e in events], count=len(events)
    )

"""Jobs: creation, team-scoped reads and lists, cancel, retry and delete."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from core.spec_summary import spec_summary
from store.models import (
    Artifact,
    Job,
    JobEvent,
    MetricPoint,
    Teacher,
    Team,
    User,
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
    """A new `queued` job; the caller commits, then sends `distillery.run_job(job_id)`.

    The row keeps the job list's summary of the spec (`core.spec_summary.spec_summary`).
    """
    job = Job(
        team_id=team_id,
        created_by=created_by,
        kind=kind,
        spec=spec,
        summary=spec_summary(kind, spec),
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
    _count_jobs(session, team_id, +1)
    add_event(session, job_id=job.id, message="Job queued.")
    return job


def _count_jobs(session: Session, team_id: int, change: int) -> None:
    """Add `change` to the team's job count (`Team.job_count`), in the caller's transaction."""
    session.execute(
        update(Team).where(Team.id == team_id).values(job_count=Team.job_count + change)
    )


def recount_jobs(session: Session, *, team_id: int) -> int:
    """Set the team's job count from its job rows, and return it: after rows were written
    around `create_job` (a bulk load). The caller commits."""
    counted = select(func.count()).select_from(Job).where(Job.team_id == team_id)
    total = int(session.scalar(counted) or 0)
    session.execute(update(Team).where(Team.id == team_id).values(job_count=total))
    return total


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


def _job_filters(
    *,
    team_id: int,
    state: str | Sequence[str] | None,
    kind: str | None,
    dataset_id: int | None,
    created_by: int | None,
    q: str | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Job.team_id == team_id]
    if state is not None:
        conditions.append(Job.state.in_([state] if isinstance(state, str) else list(state)))
    if kind is not None:
        conditions.append(Job.kind == kind)
    if dataset_id is not None:
        conditions.append(Job.dataset_id == dataset_id)
    if created_by is not None:
        conditions.append(Job.created_by == created_by)
    if q:
        conditions.append(Job.name.ilike(like_pattern(q), escape="\\"))
    return conditions


class JobListRow(NamedTuple):
    """One row of a job list: the job's columns but its lease, with its creator's e-mail.

    The JSON columns come as their JSON text, read for the page's rows only: `summary_json`
    is the row's stored summary of its spec, `spec_json` the spec itself, read only for a row
    without a summary (written before revision 0007). The API reduces the texts to the list's
    shape and caches what it makes of a text: a page's progress records, tags and summaries
    repeat from row to row and from poll to poll, so few are decoded at all.
    """

    id: int
    team_id: int
    name: str
    kind: str
    state: str
    summary_json: str | None
    spec_json: str | None
    spec_hash: str
    dataset_id: int | None
    teacher_id: int | None
    created_by: int | None
    creator_email: str | None
    progress_json: str | None
    metrics_json: str | None
    attempt: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    tags_json: str | None
    note: str | None


LIST_SORT_COLUMNS: tuple[str, ...] = ("created_at", "finished_at", "name", "state", "kind", "id")
"""Job columns a job list sorts by (`-` before a name: descending)."""

LIST_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
"""COCO figures of metrics.json a job list sorts and filters by (`metric:AP_small`)."""


@dataclass(frozen=True)
class JobSort:
    """The order of a job list: a column of LIST_SORT_COLUMNS or `metric:<LIST_METRICS>`.

    The default, newest first, is `JobSort("created_at", descending=True)`; it alone pages by
    keyset cursor. Rows without the figure sort last either way; ties go by id.
    """

    key: str = "created_at"
    descending: bool = True

    @property
    def is_default(self) -> bool:
        """Whether this is the newest-first order keyset cursors follow."""
        return self.key == "created_at" and self.descending


def parse_job_sort(text: str | None) -> JobSort:
    """`-created_at`, `name`, `metric:AP_small`, `-metric:AP` as a JobSort; ValueError else."""
    if not text:
        return JobSort()
    descending = text.startswith("-")
    key = text[1:] if descending else text
    if key.startswith("metric:"):
        if key.removeprefix("metric:") not in LIST_METRICS:
            raise ValueError(f"{key!r}: the metric is not one of {', '.join(LIST_METRICS)}")
    elif key not in LIST_SORT_COLUMNS:
        raise ValueError(
            f"{text!r} is not a column ({', '.join(LIST_SORT_COLUMNS)}) or metric:<name>"
        )
    return JobSort(key, descending)


def metric_value(name: str) -> ColumnElement[float]:
    """A job's COCO figure `name` from its metrics (the student's; a teacher job's own)."""
    student = Job.metrics[("student", name)].as_float()
    teacher = Job.metrics[("teacher", name)].as_float()
    return func.coalesce(student, case((Job.kind == "teacher", teacher), else_=None), type_=Float)


def _sort_expression(key: str) -> ColumnElement[Any]:
    if key.startswith("metric:"):
        return metric_value(key.removeprefix("metric:"))
    column: ColumnElement[Any] = getattr(Job, key)
    return column


def tag_pattern(tag: str) -> str:
    """The LIKE pattern of `tag` inside the JSON text of a tags list (tags hold no quotes)."""
    return "%" + like_pattern(json.dumps(tag)).strip("%") + "%"


# In JobListRow's order.
_LIST_COLUMNS = (
    Job.id,
    Job.team_id,
    Job.name,
    Job.kind,
    Job.state,
    cast(Job.summary, Text).label("summary_json"),
    case((Job.summary.is_(None), cast(Job.spec, Text)), else_=None).label("spec_json"),
    Job.spec_hash,
    Job.dataset_id,
    Job.teacher_id,
    Job.created_by,
    User.email.label("creator_email"),
    cast(Job.progress, Text).label("progress_json"),
    cast(Job.metrics, Text).label("metrics_json"),
    Job.attempt,
    Job.max_attempts,
    Job.cancel_requested,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.updated_at,
    cast(Job.tags, Text).label("tags_json"),
    Job.note,
)


@dataclass(frozen=True)
class JobPage:
    """A page of a job list: its rows, the count matching the filters, where the next starts.

    `next_after` is the (created_at, id) of the page's last row when more rows follow: pass it
    as `after` for the next page.
    """

    rows: list[JobListRow]
    total: int
    next_after: tuple[datetime, int] | None


@functools.lru_cache(maxsize=256)
def _page_statement(
    *,
    states: bool,
    kind: bool,
    dataset: bool,
    creator: bool,
    search: bool,
    keyset: bool,
    tag: bool = False,
    bounds: tuple[tuple[str, str], ...] = (),
    sort: JobSort = JobSort(),  # frozen: one shared default is safe
) -> Select:  # type: ignore[type-arg]  # Select[...] differs in SQLAlchemy 2.0 and 2.1
    """The page statement of one combination of filters, built once (values are parameters).

    The count of the filter LEFT JOINed to the page: one row even when the page is empty
    (without a filter, the team's kept count: `Team.job_count`).
    The page is chosen on (id, sort key) alone; the JSON texts are read for its own rows
    only, not for those an offset skips or the sort compares.
    """
    conditions: list[ColumnElement[bool]] = [Job.team_id == bindparam("team_id")]
    if states:
        conditions.append(Job.state.in_(bindparam("states", expanding=True)))
    if kind:
        conditions.append(Job.kind == bindparam("kind"))
    if dataset:
        conditions.append(Job.dataset_id == bindparam("dataset_id"))
    if creator:
        conditions.append(Job.created_by == bindparam("created_by"))
    if search:
        conditions.append(Job.name.ilike(bindparam("pattern"), escape="\\"))
    if tag:
        conditions.append(cast(Job.tags, Text).like(bindparam("tag_pattern"), escape="\\"))
    for metric, side in bounds:
        value = metric_value(metric)
        limit = bindparam(f"{side}_{metric}", type_=Float)
        conditions.append(value >= limit if side == "min" else value <= limit)
    position: list[ColumnElement[bool]] = []
    if keyset:
        position.append(
            or_(
                Job.created_at < bindparam("after_at"),
                and_(Job.created_at == bindparam("after_at"), Job.id < bindparam("after_id")),
            )
        )
    if not (states or kind or dataset or creator or search or tag or bounds):
        # No filter but the team's: its kept count (`Team.job_count`), not a scan of its jobs.
        counted = (
            select(Team.job_count.label("total")).where(Team.id == bindparam("team_id")).subquery()
        )
    else:
        counted = select(func.count().label("total")).select_from(Job).where(*conditions).subquery()
    key = _sort_expression(sort.key)
    first = key.desc() if sort.descending else key.asc()
    if _nullable(sort.key):
        first = first.nulls_last()
    tie = Job.id.desc() if sort.descending else Job.id.asc()
    # The page's ids alone first (the default order is a backward scan of
    # ix_jobs_team_created_id), then the wide columns of those rows only: sorting or skipping
    # whole rows with their JSON texts would cost the whole filter's width.
    ids = (
        select(Job.id.label("page_id"), key.label("sort_key"))
        .where(*conditions, *position)
        .order_by(first, tie)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .subquery()
    )
    page = (
        select(*_LIST_COLUMNS, ids.c.sort_key)
        .select_from(ids)
        .join(Job, Job.id == ids.c.page_id)
        .outerjoin(User, User.id == Job.created_by)
        .subquery()
    )
    outer = page.c.sort_key.desc() if sort.descending else page.c.sort_key.asc()
    outer_tie = page.c.id.desc() if sort.descending else page.c.id.asc()
    return (
        select(counted.c.total, page)
        .select_from(counted.outerjoin(page, true()))
        .order_by(outer.nulls_last(), outer_tie)
    )


def _nullable(key: str) -> bool:
    """Whether a sort key may be NULL (a metric, finished_at ...): those sort last. A NOT NULL
    key is ordered plainly, so that an index serves the order."""
    if key.startswith("metric:"):
        return True
    return bool(Job.__table__.c[key].nullable)


def job_page(
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
    after: tuple[datetime, int] | None = None,
    tag: str | None = None,
    metric_bounds: Mapping[tuple[str, str], float] | None = None,
    sort: JobSort | None = None,
) -> JobPage:
    """A page of the team's jobs, newest first, in ONE statement: rows, total and e-mails.

    Keyset pagination with `after` (the `next_after` of the previous page: rows strictly
    older than it), offsets with `offset`; both may be combined. The total counts every row
    the filters match, whatever the page. The page is read one row longer than asked, so
    `next_after` needs no second query.

    `tag` keeps jobs carrying that tag; `metric_bounds` maps (metric, "min"|"max") to a
    bound on that COCO figure (a fraction, as in metrics.json: jobs without it drop out);
    `sort` orders the rows otherwise (only the default order pages by keyset: with another,
    `after` is refused with ValueError and `next_after` is None).
    """
    sort = sort or JobSort()
    if after is not None and not sort.is_default:
        raise ValueError("keyset pages follow the newest-first order only; use offset")
    bounds = tuple(sorted((metric_bounds or {}).items()))
    for (metric, side), _ in bounds:
        if metric not in LIST_METRICS or side not in ("min", "max"):
            raise ValueError(f"no bound {side!r} on {metric!r}")
    limit = max(1, limit)
    params: dict[str, Any] = {"team_id": team_id, "limit": limit + 1, "offset": max(0, offset)}
    if state is not None:
        params["states"] = [state] if isinstance(state, str) else list(state)
    if kind is not None:
        params["kind"] = kind
    if dataset_id is not None:
        params["dataset_id"] = dataset_id
    if created_by is not None:
        params["created_by"] = created_by
    if q:
        params["pattern"] = like_pattern(q)
    if after is not None:
        params["after_at"], params["after_id"] = after
    if tag:
        params["tag_pattern"] = tag_pattern(tag)
    for (metric, side), value in bounds:
        params[f"{side}_{metric}"] = float(value)
    statement = _page_statement(
        states=state is not None,
        kind=kind is not None,
        dataset=dataset_id is not None,
        creator=created_by is not None,
        search=bool(q),
        keyset=after is not None,
        tag=bool(tag),
        bounds=tuple(key for key, _ in bounds),
        sort=sort,
    )
    result = session.execute(statement, params).all()
    total = int(result[0][0]) if result else 0
    width = len(JobListRow._fields)
    rows = [JobListRow._make(row[1 : 1 + width]) for row in result if row[1] is not None]
    next_after = None
    if len(rows) > limit:
        rows = rows[:limit]
        if sort.is_default:
            next_after = (rows[-1].created_at, rows[-1].id)
    return JobPage(rows=rows, total=total, next_after=next_after)


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
    """A page of the team's jobs (whole rows), newest first, filtered, and the filter's count.

    For code that needs the ORM objects; the API's list uses `job_page` (one statement).
    """
    conditions = _job_filters(
        team_id=team_id, state=state, kind=kind, dataset_id=dataset_id, created_by=created_by, q=q
    )
    stmt = scoped(select(Job).where(*conditions), Job, team_id)
    return paged(session, stmt, (Job.created_at.desc(), Job.id.desc()), limit, offset)


MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_NOTE_LENGTH = 4000


def annotate_job(
    session: Session,
    *,
    team_id: int,
    job_id: int,
    tags: Sequence[str] | None = None,
    note: str | None = None,
) -> Job | None:
    """Set a job's tags and/or note (None leaves that one as it is); None if not found.

    The caller validates (api.schemas.JobPatch) and commits.
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    if tags is not None:
        job.tags = list(dict.fromkeys(tags))
    if note is not None:
        job.note = note
    session.flush()
    return job


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
    _count_jobs(session, team_id, -1)
    return job


def restore_queued_job(session: Session, *, job_id: int, fields: Mapping[str, Any]) -> bool:
    """Put back `fields` of a job still queued (a retry whose message could not be sent).

    Conditional: a worker that took the job meanwhile keeps it. True if the row was changed.
    """
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.state == "queued").values(**fields)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]

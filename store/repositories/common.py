"""What the repository modules share: team scoping, errors and small query helpers."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result, Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from store.models import (
    Artifact,
    Backbone,
    Dataset,
    Job,
    Teacher,
)

TeamOwned = type[Job] | type[Dataset] | type[Teacher] | type[Artifact] | type[Backbone]


# last_used_at is bookkeeping: writing it on every request would serialise SQLite writers.
class StateConflict(ValueError):
    """An operation that the row's current state does not allow (HTTP 409)."""


class AlreadyExists(ValueError):
    """A row with the same unique name already exists (HTTP 409)."""


def scoped(stmt: Select[Any], model: TeamOwned, team_id: int) -> Select[Any]:
    """`stmt` restricted to the rows of `model` that belong to `team_id`, read afresh."""
    # populate_existing: workers change rows with bulk UPDATEs in other sessions; a read must
    # show the database, not an object this session loaded earlier.
    return stmt.where(model.team_id == team_id).execution_options(populate_existing=True)


def affected_rows(result: Result[Any]) -> int:
    # UPDATE results are cursor results; the generic Result type does not show rowcount.
    return cast("CursorResult[Any]", result).rowcount


def expunge_job(session: Session, job_id: int) -> None:
    # Bulk UPDATEs bypass the identity map; a Job object loaded earlier must reload.
    job = session.identity_map.get(identity_key(Job, job_id))
    if job is not None:
        session.expire(job)


def like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def paged(
    session: Session, stmt: Select[Any], order: tuple[Any, ...], limit: int, offset: int
) -> tuple[list[Any], int]:
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = session.scalars(stmt.order_by(*order).limit(max(0, limit)).offset(max(0, offset)))
    return list(page.unique()), int(count)

"""Metric points of a job: written in batches, read as series."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import (
    JobEvent,
    MetricPoint,
    utcnow,
)


def add_metric_points(session: Session, *, job_id: int, points: Iterable[Mapping[str, Any]]) -> int:
    """Insert many points `{name, value, step, epoch?}` in one statement; the number stored.

    Non-finite values are skipped: SQLite stores NaN as NULL and JSON cannot carry it.
    """
    now = utcnow()
    rows = [
        {
            "job_id": job_id,
            "name": str(p["name"]),
            "value": float(p["value"]),
            "step": int(p["step"]),
            "epoch": int(p.get("epoch", 0)),
            "created_at": now,
        }
        for p in points
        if math.isfinite(float(p["value"]))
    ]
    if rows:
        session.execute(MetricPoint.__table__.insert(), rows)  # type: ignore[attr-defined]
    return len(rows)


def metric_points(
    session: Session,
    *,
    job_id: int,
    names: Sequence[str] | None = None,
    since_id: int | None = None,
    limit: int | None = None,
) -> list[MetricPoint]:
    """The job's points in insertion order, optionally only some series or only newer ids."""
    stmt = select(MetricPoint).where(MetricPoint.job_id == job_id)
    if names:
        stmt = stmt.where(MetricPoint.name.in_(list(names)))
    if since_id is not None:
        stmt = stmt.where(MetricPoint.id > since_id)
    stmt = stmt.order_by(MetricPoint.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def metric_series(
    session: Session,
    *,
    job_id: int,
    names: Sequence[str] | None = None,
    since_id: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The job's series `{name: [{step, epoch, value}, ...]}`, each ordered by step."""
    stmt = select(MetricPoint.name, MetricPoint.step, MetricPoint.epoch, MetricPoint.value).where(
        MetricPoint.job_id == job_id
    )
    if names:
        stmt = stmt.where(MetricPoint.name.in_(list(names)))
    if since_id is not None:
        stmt = stmt.where(MetricPoint.id > since_id)
    series: dict[str, list[dict[str, Any]]] = {}
    for name, step, epoch, value in session.execute(
        stmt.order_by(MetricPoint.name, MetricPoint.step, MetricPoint.id)
    ):
        series.setdefault(name, []).append({"step": step, "epoch": epoch, "value": value})
    return series


def metric_names(session: Session, *, job_id: int) -> list[str]:
    """The names of the job's series, sorted."""
    stmt = select(MetricPoint.name).where(MetricPoint.job_id == job_id).distinct()
    return sorted(session.scalars(stmt))


def latest_metric_values(
    session: Session, *, job_ids: Iterable[int], names: Iterable[str]
) -> dict[int, dict[str, float]]:
    """Job id -> {name: the last value written} of these series, for these jobs."""
    rows = session.execute(
        select(MetricPoint.job_id, MetricPoint.name, MetricPoint.value)
        .where(MetricPoint.job_id.in_(list(job_ids)), MetricPoint.name.in_(list(names)))
        .order_by(MetricPoint.id)
    )
    latest: dict[int, dict[str, float]] = {}
    for job_id, name, value in rows:
        latest.setdefault(job_id, {})[name] = value
    return latest


def last_written_ids(session: Session, *, job_id: int) -> tuple[int, int]:
    """(last metric point id, last event id) of a job, 0 where it has none."""
    metric_id = session.scalar(select(func.max(MetricPoint.id)).where(MetricPoint.job_id == job_id))
    event_id = session.scalar(select(func.max(JobEvent.id)).where(JobEvent.job_id == job_id))
    return metric_id or 0, event_id or 0

"""Metric points of a job: written in batches, read as series (stage by stage on one axis)."""

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

STAGE_ORDER: tuple[str, ...] = ("teacher", "distill", "finetune")
"""The order a job's training stages run in (core/pipeline/recipes.py); other stage names
follow in the order their first point was written."""


def add_metric_points(session: Session, *, job_id: int, points: Iterable[Mapping[str, Any]]) -> int:
    """Insert many points `{name, value, step, epoch?, stage?}` in one statement; the number
    stored. `stage` is the trainer's (teacher, distill, finetune); without one the point reads
    as the job's kind.

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
            "stage": str(p["stage"])[:16] if p.get("stage") else None,
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


def stage_offsets(session: Session, *, job_id: int, default_stage: str) -> dict[str, int]:
    """Stage -> the steps of the stages before it (the shift onto the job's global step axis).

    Stages run in `STAGE_ORDER` (others after, in the order they were first written); each
    stage's length is its highest step over all of the job's series. Points without a stage
    belong to `default_stage`.
    """
    rows = session.execute(
        select(MetricPoint.stage, func.max(MetricPoint.step), func.min(MetricPoint.id))
        .where(MetricPoint.job_id == job_id)
        .group_by(MetricPoint.stage)
    )
    longest: dict[str, int] = {}
    first_id: dict[str, int] = {}
    for stage, last_step, first in rows:
        name = stage or default_stage
        longest[name] = max(longest.get(name, 0), int(last_step or 0))
        first_id[name] = min(first_id.get(name, first), first)

    def rank(name: str) -> tuple[int, int]:
        known = STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)
        return known, first_id[name]

    offsets: dict[str, int] = {}
    total = 0
    for name in sorted(longest, key=rank):
        offsets[name] = total
        total += longest[name]
    return offsets


def metric_series(
    session: Session,
    *,
    job_id: int,
    names: Sequence[str] | None = None,
    since_id: int | None = None,
    default_stage: str = "train",
) -> dict[str, list[dict[str, Any]]]:
    """The job's series `{name: [{step, epoch, value, stage, global_step, wall_time}, ...]}`,
    each in stage order, then by step.

    `stage` is the point's stage (`default_stage`, the job's kind, for points written without
    one); `global_step` is its step on one axis across the stages (`stage_offsets`), None
    for a point written without a stage (older jobs: their steps may restart unannounced);
    `wall_time` the seconds from the job's first point to the write of this one (points are
    written in batches, about once a second).
    """
    offsets = stage_offsets(session, job_id=job_id, default_stage=default_stage)
    started = session.scalar(
        select(func.min(MetricPoint.created_at)).where(MetricPoint.job_id == job_id)
    )
    stmt = select(
        MetricPoint.name,
        MetricPoint.step,
        MetricPoint.epoch,
        MetricPoint.value,
        MetricPoint.stage,
        MetricPoint.created_at,
    ).where(MetricPoint.job_id == job_id)
    if names:
        stmt = stmt.where(MetricPoint.name.in_(list(names)))
    if since_id is not None:
        stmt = stmt.where(MetricPoint.id > since_id)
    series: dict[str, list[dict[str, Any]]] = {}
    for name, step, epoch, value, stored, written in session.execute(
        stmt.order_by(MetricPoint.name, MetricPoint.step, MetricPoint.id)
    ):
        stage = stored or default_stage
        elapsed = (written - started).total_seconds() if started and written else 0.0
        series.setdefault(name, []).append(
            {
                "step": step,
                "epoch": epoch,
                "value": value,
                "stage": stage,
                "global_step": offsets.get(stage, 0) + step if stored else None,
                "wall_time": round(elapsed, 3),
            }
        )
    for points in series.values():
        # Stable: ties keep insertion order; points without a global step keep their step order.
        points.sort(key=lambda p: p["step"] if p["global_step"] is None else p["global_step"])
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

"""Rows of the job list as `JobSummary`: no spec, the progress without losses, headline AP.

The store hands over each row's JSON columns as text: its stored spec summary (the spec
instead for a row written before summaries were stored), progress, metrics and tags. What is
made of a text is cached (it is a pure function of it): rows share most of these texts and a
dashboard polls the same page, so a page decodes few of them at all.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from api.schemas import JobSummary
from core.spec_summary import number_or_none, spec_summary
from store.repositories import JobListRow

PROGRESS_KEYS: tuple[str, ...] = ("stage", "epoch", "epochs", "step", "total_steps", "eta_seconds")
"""The fields of the progress record a job list shows (not the per-term losses)."""

HEADLINE_METRICS: tuple[str, ...] = ("AP", "AP_small", "AP_medium", "AP_large")
"""The COCO figures a job list shows, of the student and of the teacher."""

CACHED_TEXTS = 4096
"""Spec and metrics texts whose summaries each process keeps (least recently used go)."""


def list_progress(progress: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The progress record as a job list shows it: `PROGRESS_KEYS` only."""
    if not isinstance(progress, Mapping):
        return None
    return {key: progress[key] for key in PROGRESS_KEYS if key in progress}


def headline_of(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{student: {AP, AP_small, ...}, teacher: {...}}` of a metrics.json (figures present)."""
    if not isinstance(metrics, Mapping):
        return None
    out: dict[str, Any] = {}
    for role in ("student", "teacher"):
        figures = metrics.get(role)
        if isinstance(figures, Mapping):
            out[role] = {
                name: value
                for name in HEADLINE_METRICS
                if (value := number_or_none(figures.get(name))) is not None
            }
    return out


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _spec_summary_of_text(kind: str, text: str | None) -> dict[str, Any]:
    return spec_summary(kind, json.loads(text) if text else None)


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _headline_of_text(text: str | None) -> dict[str, Any] | None:
    return headline_of(json.loads(text) if text else None)


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _decoded(text: str | None) -> Any:
    """A JSON text's value, shared by every caller: read it, never change it (pydantic's
    validation of a JobSummary copies what it keeps)."""
    return json.loads(text) if text else None


@functools.lru_cache(maxsize=CACHED_TEXTS)
def _progress_of_text(text: str | None) -> dict[str, Any] | None:
    return list_progress(_decoded(text))


def _summary_of(row: JobListRow) -> Any:
    if row.summary_json is not None:
        return _decoded(row.summary_json)
    return _spec_summary_of_text(row.kind, row.spec_json)


def job_summary(row: JobListRow) -> JobSummary:
    """A job list row as the list's public shape."""
    return JobSummary.model_validate(
        {
            "id": row.id,
            "name": row.name,
            "kind": row.kind,
            "state": row.state,
            "progress": _progress_of_text(row.progress_json),
            "metrics": _headline_of_text(row.metrics_json),
            "spec_hash": row.spec_hash,
            "spec_summary": _summary_of(row),
            "dataset_id": row.dataset_id,
            "teacher_id": row.teacher_id,
            "created_by": row.created_by,
            "creator_email": row.creator_email,
            "attempt": row.attempt,
            "created_at": row.created_at,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "updated_at": row.updated_at,
            "tags": _decoded(row.tags_json) or [],
            "note": row.note or "",
        }
    )

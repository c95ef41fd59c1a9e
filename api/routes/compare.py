"""Comparing jobs: headline metrics side by side and the differences of their specs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.bounds import parse_row_id
from api.comparison import COCO_METRICS, headline_metrics, side_by_side, spec_diff
from api.deps import CurrentTeam, SessionDep
from api.errors import FieldError, not_found
from api.routes.jobs import job_publics
from api.schemas import ComparePublic, SpecDifference
from store import repositories as repo
from store.db import Session

router = APIRouter(tags=["compare"])

MAX_COMPARED = 20


def parse_job_ids(raw: str) -> list[int]:
    """`1,2,3` as distinct ids in order; 422 naming `jobs` otherwise."""
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        job_id = parse_row_id(part)
        if job_id is None:
            raise FieldError(422, ["query", "jobs"], f"{part!r} is not a job id")
        if job_id not in ids:
            ids.append(job_id)
    if not ids:
        raise FieldError(422, ["query", "jobs"], "name at least one job id, e.g. jobs=1,2")
    if len(ids) > MAX_COMPARED:
        raise FieldError(422, ["query", "jobs"], f"at most {MAX_COMPARED} jobs at once")
    return ids


def _latest_eval(session: Session, job_ids: list[int]) -> dict[int, dict[str, Any]]:
    # Jobs still running have no metrics.json yet; their last evaluation stands in.
    names = [f"eval/{name}" for name in COCO_METRICS]
    latest = repo.latest_metric_values(session, job_ids=job_ids, names=names)
    return {
        job_id: {name.removeprefix("eval/"): value for name, value in values.items()}
        for job_id, values in latest.items()
    }


@router.get("/compare", response_model=ComparePublic)
def compare_jobs(
    team: CurrentTeam,
    session: SessionDep,
    jobs: Annotated[str, Query(description="comma-separated job ids, e.g. 1,2,3")],
) -> ComparePublic:
    """Jobs side by side, with where their specs differ.

    `metrics[name][i]` belongs to `jobs[i]`; `spec_diff` lists every spec leaf that differs
    (e.g. `distill.levels.p2.spatial`) with each job's value.
    """
    ids = parse_job_ids(jobs)
    found = repo.get_jobs(session, team_id=team.id, job_ids=ids)
    found_ids = {job.id for job in found}
    for job_id in ids:
        if job_id not in found_ids:
            raise not_found("job", job_id)
    unevaluated = [job.id for job in found if not (job.metrics or {}).get("student")]
    evals = _latest_eval(session, unevaluated)
    per_job = []
    for job in found:
        metrics = dict(job.metrics or {})
        if not metrics.get("student") and job.id in evals:
            metrics["student"] = evals[job.id]
        figures = headline_metrics(metrics)
        # ONNX Runtime beside PyTorch (the spread of each is in the jobs' metrics).
        for model in ("student", "teacher"):
            onnx = ((metrics.get("efficiency") or {}).get(model) or {}).get("onnx_latency_ms")
            if isinstance(onnx, int | float) and not isinstance(onnx, bool):
                figures[f"efficiency/{model}/onnx_latency_ms"] = float(onnx)
        per_job.append(figures)
    return ComparePublic(
        jobs=job_publics(session, found),
        metrics=side_by_side(per_job),
        spec_diff=[SpecDifference(**d) for d in spec_diff([job.spec for job in found])],
    )

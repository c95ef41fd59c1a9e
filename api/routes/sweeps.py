"""Sweeps: create a search over a distill spec, list, get with trials, pause/resume/cancel,
the best trial, and the final run of the best spec on the test split.

The API never imports Optuna: it records the sweep and sends `distillery.advance_sweep`; the
worker asks Optuna for trials and queues them as ordinary jobs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import CurrentTeam, PageDep, QueueDep, RowId, SessionDep, SettingsDep, WriterTeam
from api.errors import FieldErrors, conflict, not_found, unavailable
from api.job_specs import accept_spec
from api.queue import QueueUnavailable, TaskQueue
from core.spec import JobSpec
from core.sweep_spec import SweepSpec, check_space, final_spec
from store import repositories as repo
from store.broker import TASK_ADVANCE_SWEEP, VALIDATION_QUEUE
from store.db import Session
from store.models import Job, Sweep
from store.repositories import sweeps as sweep_repo

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


class SweepCreate(BaseModel):
    """A sweep: a base distill spec plus the fields of `core.sweep_spec.SweepSpec`."""

    model_config = ConfigDict(extra="allow")

    spec: dict[str, Any]
    name: str | None = Field(None, max_length=200)


class FinalRunCreate(BaseModel):
    """The split the best spec is evaluated on (the dataset's test split)."""

    split: str = Field("test", min_length=1, max_length=100)


class TrialPublic(BaseModel):
    """One trial: its job, Optuna number, parameters, outcome and objective value."""

    job_id: int
    number: int
    state: str
    trial_state: str | None
    params: dict[str, Any]
    value: float | None
    error: str | None
    epoch: int | None
    created_at: datetime
    finished_at: datetime | None


class SweepPublic(BaseModel):
    """A sweep as the dashboard and the CLI see it (`trials` only on GET /sweeps/{id})."""

    id: int
    name: str
    state: str
    config: dict[str, Any]
    spec: dict[str, Any]
    dataset_id: int | None
    teacher_id: int | None
    created_by: int | None
    best_job_id: int | None
    best_value: float | None
    final_job_id: int | None
    importance: dict[str, float] | None
    error: str | None
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None
    trials: list[TrialPublic] | None = None


class SweepsPublic(BaseModel):
    """A page of sweeps."""

    data: list[SweepPublic]
    count: int


def _trial(job: Job) -> TrialPublic:
    progress = job.progress or {}
    return TrialPublic(
        job_id=job.id,
        number=job.trial_number or 0,
        state=job.state,
        trial_state=job.trial_state,
        params=dict(job.trial_params or {}),
        value=job.trial_value,
        error=job.error,
        epoch=progress.get("epoch") if isinstance(progress.get("epoch"), int) else None,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def sweep_public(session: Session, sweep: Sweep, *, with_trials: bool) -> SweepPublic:
    """A sweep's public shape, with its trial counts (and its trials)."""
    trials = sweep_repo.sweep_trials(session, sweep_id=sweep.id)
    counts: dict[str, int] = {"total": len(trials)}
    for job in trials:
        key = job.trial_state if job.trial_state != "running" else job.state
        counts[key or "running"] = counts.get(key or "running", 0) + 1
    return SweepPublic(
        id=sweep.id,
        name=sweep.name,
        state=sweep.state,
        config=dict(sweep.config),
        spec=dict(sweep.spec),
        dataset_id=sweep.dataset_id,
        teacher_id=sweep.teacher_id,
        created_by=sweep.created_by,
        best_job_id=sweep.best_job_id,
        best_value=sweep.best_value,
        final_job_id=sweep.final_job_id,
        importance=sweep.importance,
        error=sweep.error,
        counts=counts,
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        trials=[_trial(job) for job in trials] if with_trials else None,
    )


def team_sweep(session: Session, team_id: int, sweep_id: int) -> Sweep:
    """The team's sweep, or a 404 (also for another team's)."""
    sweep = sweep_repo.get_sweep(session, team_id=team_id, sweep_id=sweep_id)
    if sweep is None:
        raise not_found("sweep", sweep_id)
    return sweep


def _sweep_config(body: SweepCreate) -> SweepSpec:
    try:
        return SweepSpec.model_validate(body.model_extra or {})
    except ValidationError as exc:
        raise FieldErrors(
            [{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None


def _advance(queue: TaskQueue, sweep_id: int) -> None:
    queue.send(TASK_ADVANCE_SWEEP, sweep_id, queue=VALIDATION_QUEUE)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepPublic)
def create_sweep(
    body: SweepCreate, team: WriterTeam, session: SessionDep, queue: QueueDep
) -> SweepPublic:
    """Start a sweep; 422 names every field at fault (spec, space, budget, method)."""
    config = _sweep_config(body)
    accepted = accept_spec(session, team_id=team.id, raw=body.spec)
    problems = check_space(accepted.spec, config)
    if problems:
        raise FieldErrors(
            [
                {"loc": ["body", "space", p.path], "msg": p.message, "type": "value_error"}
                for p in problems
            ]
        )
    name = (body.name or accepted.spec.name or "").strip() or f"sweep on {accepted.dataset.name}"
    sweep = sweep_repo.create_sweep(
        session,
        team_id=team.id,
        created_by=team.user.id,
        name=name[:200],
        spec=accepted.spec.model_dump(mode="json"),
        config=config.model_dump(mode="json"),
        dataset_id=accepted.dataset.id,
        teacher_id=accepted.teacher.id if accepted.teacher is not None else None,
    )
    session.commit()
    try:
        _advance(queue, sweep.id)
    except QueueUnavailable as exc:
        session.delete(sweep)
        session.commit()
        raise unavailable(f"{exc}; the sweep was not created") from exc
    return sweep_public(session, sweep, with_trials=False)


@router.get("", response_model=SweepsPublic)
def list_sweeps(team: CurrentTeam, session: SessionDep, page: PageDep) -> SweepsPublic:
    """The team's sweeps, newest first."""
    sweeps, total = sweep_repo.list_sweeps(
        session, team_id=team.id, limit=page.limit, offset=page.offset
    )
    return SweepsPublic(
        data=[sweep_public(session, s, with_trials=False) for s in sweeps], count=total
    )


@router.get("/{sweep_id}", response_model=SweepPublic)
def get_sweep(sweep_id: RowId, team: CurrentTeam, session: SessionDep) -> SweepPublic:
    """One sweep with its trials."""
    return sweep_public(session, team_sweep(session, team.id, sweep_id), with_trials=True)


def _change(
    session: Session, team_id: int, sweep_id: int, state: str, queue: TaskQueue | None = None
) -> SweepPublic:
    team_sweep(session, team_id, sweep_id)
    try:
        sweep = sweep_repo.set_sweep_state(session, team_id=team_id, sweep_id=sweep_id, state=state)
    except repo.StateConflict as exc:
        raise conflict(str(exc)) from None
    assert sweep is not None
    session.commit()
    if queue is not None:
        try:
            _advance(queue, sweep_id)
        except QueueUnavailable as exc:
            raise unavailable(f"{exc}; the sweep resumes with its next finished trial") from exc
    return sweep_public(session, sweep, with_trials=True)


@router.post("/{sweep_id}/pause", response_model=SweepPublic)
def pause_sweep(sweep_id: RowId, team: WriterTeam, session: SessionDep) -> SweepPublic:
    """Queue no new trials (those in flight run to their end)."""
    return _change(session, team.id, sweep_id, "paused")


@router.post("/{sweep_id}/resume", response_model=SweepPublic)
def resume_sweep(
    sweep_id: RowId, team: WriterTeam, session: SessionDep, queue: QueueDep
) -> SweepPublic:
    """Queue trials again up to the budget."""
    return _change(session, team.id, sweep_id, "running", queue)


@router.post("/{sweep_id}/cancel", response_model=SweepPublic)
def cancel_sweep(sweep_id: RowId, team: WriterTeam, session: SessionDep) -> SweepPublic:
    """Stop the sweep and cancel its queued and running trials."""
    return _change(session, team.id, sweep_id, "canceled")


def _best_job(session: Session, team_id: int, sweep: Sweep) -> Job:
    job = (
        repo.get_job(session, team_id=team_id, job_id=sweep.best_job_id)
        if sweep.best_job_id is not None
        else None
    )
    if job is None:
        raise conflict(f"sweep {sweep.id} has no completed trial yet")
    return job


@router.get("/{sweep_id}/best")
def best_trial(sweep_id: RowId, team: CurrentTeam, session: SessionDep) -> dict[str, Any]:
    """The best trial: its job (the student is its artifact), spec, value and diagnosis."""
    sweep = team_sweep(session, team.id, sweep_id)
    job = _best_job(session, team.id, sweep)
    metrics = job.metrics or {}
    return {
        "job_id": job.id,
        "number": job.trial_number,
        "value": job.trial_value,
        "objective": sweep.config.get("objective"),
        "params": job.trial_params or {},
        "spec": job.spec,
        "metrics": metrics.get("student"),
        "diagnosis": {
            "pairs": metrics.get("distill/pairs"),
            "grad": metrics.get("kd/grad"),
            "absorbed": metrics.get("kd/absorbed"),
        },
    }


@router.post("/{sweep_id}/final-run", status_code=status.HTTP_201_CREATED)
def final_run(
    sweep_id: RowId,
    body: FinalRunCreate,
    team: WriterTeam,
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> dict[str, Any]:
    """Queue an ordinary job of the best trial's spec, evaluated on the test split."""
    sweep = team_sweep(session, team.id, sweep_id)
    best = _best_job(session, team.id, sweep)
    raw = final_spec(dict(best.spec), test_split=body.split)
    accepted = accept_spec(session, team_id=team.id, raw=raw)
    spec: JobSpec = accepted.spec
    job = repo.create_job(
        session,
        team_id=team.id,
        created_by=team.user.id,
        kind=spec.kind,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.spec_hash(),
        name=f"{sweep.name} best #{best.trial_number} on {body.split}"[:200],
        dataset_id=accepted.dataset.id,
        teacher_id=accepted.teacher.id if accepted.teacher is not None else None,
        max_attempts=settings.max_attempts,
    )
    job.sweep_id = sweep.id
    sweep_repo.set_final_job(session, sweep_id=sweep.id, job_id=job.id)
    session.commit()
    try:
        queue.run_job(job.id)
    except QueueUnavailable as exc:
        repo.delete_job(session, team_id=team.id, job_id=job.id)
        session.commit()
        raise unavailable(f"{exc}; the final run was not created") from exc
    return {"job_id": job.id, "split": body.split, "spec": job.spec}

"""Sweeps: creation, team-scoped reads, state changes, the advance claim and trial jobs.

Optuna keeps its own tables (`studies`, `trials`, ...) in the same database; these functions
hold the platform's side: the sweep row and its trials, which are ordinary job rows with
`sweep_id` and `trial_number` set.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store.models import TERMINAL_JOB_STATES, Job, Sweep, utcnow
from store.repositories.common import StateConflict, affected_rows, paged
from store.repositories.events import add_event
from store.repositories.jobs import create_job, request_cancel

OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_user_attributes",
        "study_system_attributes",
        "trials",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_heartbeats",
        "version_info",
    }
)
"""The tables Optuna's RDBStorage keeps in the platform's database (not in store.models)."""


def platform_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: compare the platform's tables, not Optuna's."""
    return not (type_ == "table" and name in OPTUNA_TABLES)


def create_sweep(
    session: Session,
    *,
    team_id: int,
    created_by: int | None,
    name: str,
    spec: dict[str, Any],
    config: dict[str, Any],
    dataset_id: int | None,
    teacher_id: int | None,
) -> Sweep:
    """A new `running` sweep (no trials yet); the caller commits, then asks for an advance."""
    sweep = Sweep(
        team_id=team_id,
        created_by=created_by,
        name=name,
        state="running",
        spec=spec,
        config=config,
        dataset_id=dataset_id,
        teacher_id=teacher_id,
        advance_pending=False,
    )
    session.add(sweep)
    session.flush()
    sweep.study_name = f"distillery-sweep-{sweep.id}"
    session.flush()
    return sweep


def get_sweep(session: Session, *, team_id: int, sweep_id: int) -> Sweep | None:
    """The team's sweep with this id, or None (also for another team's sweep)."""
    stmt = select(Sweep).where(Sweep.id == sweep_id, Sweep.team_id == team_id)
    return session.scalars(stmt.execution_options(populate_existing=True)).first()


def sweep_by_id(session: Session, *, sweep_id: int) -> Sweep | None:
    """A sweep by id whatever its team: for workers."""
    return session.get(Sweep, sweep_id, populate_existing=True)


def list_sweeps(
    session: Session, *, team_id: int, limit: int = 50, offset: int = 0
) -> tuple[list[Sweep], int]:
    """A page of the team's sweeps, newest first, and their count."""
    stmt = select(Sweep).where(Sweep.team_id == team_id)
    return paged(session, stmt, (Sweep.created_at.desc(), Sweep.id.desc()), limit, offset)


def sweep_trials(session: Session, *, sweep_id: int) -> list[Job]:
    """The sweep's trial jobs, by trial number (the final run excluded)."""
    stmt = (
        select(Job)
        .where(Job.sweep_id == sweep_id, Job.trial_number.is_not(None))
        .order_by(Job.trial_number, Job.id)
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(stmt).unique())


def trial_counts(session: Session, *, sweep_id: int) -> tuple[int, int]:
    """(trials created, trials queued or running) of a sweep."""
    total = session.scalar(
        select(func.count()).where(Job.sweep_id == sweep_id, Job.trial_number.is_not(None))
    )
    active = session.scalar(
        select(func.count()).where(
            Job.sweep_id == sweep_id,
            Job.trial_number.is_not(None),
            Job.state.not_in(TERMINAL_JOB_STATES),
        )
    )
    return int(total or 0), int(active or 0)


def add_trial_job(
    session: Session,
    *,
    sweep: Sweep,
    number: int,
    params: dict[str, Any],
    spec: dict[str, Any],
    spec_hash: str,
    max_attempts: int,
) -> Job:
    """A queued job for trial `number` of `sweep`; the caller commits, then sends run_job."""
    job = create_job(
        session,
        team_id=sweep.team_id,
        created_by=sweep.created_by,
        kind="distill",
        spec=spec,
        spec_hash=spec_hash,
        name=f"{sweep.name} #{number}"[:200],
        dataset_id=sweep.dataset_id,
        teacher_id=sweep.teacher_id,
        max_attempts=max_attempts,
    )
    job.sweep_id = sweep.id
    job.trial_number = number
    job.trial_params = params
    job.trial_state = "running"
    session.flush()
    return job


def set_trial_outcome(
    session: Session, *, job_id: int, state: str, value: float | None = None
) -> None:
    """Record a trial's outcome for its sweep (`complete`, `pruned`, `failed`) and value."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(trial_state=state, trial_value=value)
        .execution_options(synchronize_session=False)
    )


def set_best(
    session: Session,
    *,
    sweep_id: int,
    job_id: int | None,
    value: float | None,
    importance: dict[str, float] | None = None,
) -> None:
    """Point the sweep at its best trial so far (and keep the parameter importance)."""
    values: dict[str, Any] = {"best_job_id": job_id, "best_value": value}
    if importance is not None:
        values["importance"] = importance
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(**values))


def set_sweep_state(session: Session, *, team_id: int, sweep_id: int, state: str) -> Sweep | None:
    """Pause (`paused`), resume (`running`) or cancel (`canceled`) a sweep; None if not found.

    Raises StateConflict for a change the sweep's state does not allow. Cancelling also
    cancels its queued and running trials. The caller commits (and after a resume asks for
    an advance).
    """
    sweep = get_sweep(session, team_id=team_id, sweep_id=sweep_id)
    if sweep is None:
        return None
    allowed = {"paused": ("running",), "running": ("paused",), "canceled": ("running", "paused")}
    if sweep.state not in allowed[state]:
        raise StateConflict(f"sweep {sweep_id} is {sweep.state}; it cannot become {state}")
    sweep.state = state
    if state == "canceled":
        sweep.finished_at = utcnow()
        for job in sweep_trials(session, sweep_id=sweep_id):
            if job.state not in TERMINAL_JOB_STATES:
                request_cancel(session, team_id=team_id, job_id=job.id)
                add_event(session, job_id=job.id, message=f"Sweep {sweep_id} canceled.")
    session.flush()
    return sweep


def finish_sweep(session: Session, *, sweep_id: int, state: str, error: str | None = None) -> bool:
    """Mark a running sweep `finished` or `failed`; False if it was not running."""
    result = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.state == "running")
        .values(state=state, error=error, finished_at=utcnow())
    )
    return affected_rows(result) > 0


def set_final_job(session: Session, *, sweep_id: int, job_id: int) -> None:
    """Remember the sweep's final (test split) run."""
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(final_job_id=job_id))


def stalled_sweeps(session: Session, *, idle_before: datetime, now: datetime) -> list[int]:
    """Running sweeps that nobody advances: no trial queued or running, no live advance claim,
    and nothing finished (or created) since `idle_before`.

    A worker that dies between a trial's end and the advance that follows it leaves such a
    sweep; the reaper sends it `distillery.advance_sweep` again.
    """
    active = (
        select(Job.id)
        .where(Job.sweep_id == Sweep.id, Job.state.not_in(TERMINAL_JOB_STATES))
        .exists()
    )
    recent = (
        select(Job.id)
        .where(Job.sweep_id == Sweep.id, Job.finished_at >= idle_before)
        .exists()
    )
    stmt = select(Sweep.id).where(
        Sweep.state == "running",
        Sweep.created_at < idle_before,
        (Sweep.advance_until.is_(None)) | (Sweep.advance_until < now),
        ~active,
        ~recent,
    )
    return list(session.scalars(stmt.order_by(Sweep.id)))


def claim_advance(session: Session, *, sweep_id: int, seconds: float = 120.0) -> bool:
    """Take the right to advance the sweep (commits); False while another process holds it.

    The caller first notes the need (`advance_pending=True`), so a holder that releases
    after this failed claim sees it and advances once more.
    """
    now = utcnow()
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(advance_pending=True))
    session.commit()
    result = session.execute(
        update(Sweep)
        .where(
            Sweep.id == sweep_id,
            (Sweep.advance_until.is_(None)) | (Sweep.advance_until < now),
        )
        .values(advance_until=now + timedelta(seconds=seconds), advance_pending=False)
    )
    session.commit()
    return affected_rows(result) > 0


def release_advance(session: Session, *, sweep_id: int) -> bool:
    """Give the advance back (commits) unless a new need arrived meanwhile (then False)."""
    result = session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.advance_pending.is_(False))
        .values(advance_until=None)
    )
    session.commit()
    if affected_rows(result):
        return True
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(advance_pending=False))
    session.commit()
    return False

"""The reaper sends again a job whose broker message was lost, once per staleness period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.spec import JobSpec
from core.sweep_spec import SweepSpec
from store import repositories as repo
from store.broker import TASK_ADVANCE_SWEEP, VALIDATION_QUEUE
from store.db import session_scope
from store.models import Job, utcnow
from store.repositories import sweeps as sweep_repo
from tests.api.broker_probe import Broker
from tests.worker.harness import distill_spec, make_settings, seed_team, teacher_spec
from worker.celery_app import TASK_RUN_JOB, make_celery
from worker.context import build_context
from worker.reaper import reap_once


def test_a_long_queued_job_is_sent_again_once_per_period(tmp_path: Path) -> None:
    settings = make_settings("embedded", tmp_path / "data", stale_queue_seconds=600)
    seeded = seed_team(settings, tmp_path, validate=False)
    ctx = build_context(settings)
    with session_scope(ctx.sessions) as session:
        spec = teacher_spec(seeded.dataset_id, epochs=1, steps=1)
        job_id = repo.create_job(
            session,
            team_id=seeded.team_id,
            created_by=seeded.user_id,
            kind="teacher",
            spec=spec,
            dataset_id=seeded.dataset_id,
        ).id
    app = make_celery(settings)
    broker = Broker(settings.resolved_broker_url, settings.job_queue)

    # Fresh: nothing to resend.
    assert reap_once(app) == []
    assert broker.enqueued(settings.job_queue) == []

    # Queued for longer than the period (a worker died holding its message): sent again.
    later = utcnow() + timedelta(seconds=601)
    assert reap_once(app, now=later) == [job_id]
    assert broker.enqueued(settings.job_queue) == [(TASK_RUN_JOB, [job_id])]
    # Marked as sent: not again within the next period, however often the reaper runs.
    assert reap_once(app, now=later + timedelta(seconds=30)) == []
    assert reap_once(app, now=later + timedelta(seconds=602)) == [job_id]
    ctx.close()


def test_an_idle_running_sweep_is_advanced_again(tmp_path: Path) -> None:
    """A worker killed between a trial's end and its advance leaves a running sweep that
    nobody advances: the reaper sends `advance_sweep` once it has been idle for a lease,
    and not while a trial is in flight or the sweep is paused."""
    settings = make_settings("embedded", tmp_path / "data", lease_seconds=60)
    seeded = seed_team(settings, tmp_path, validate=False)
    ctx = build_context(settings)
    config = SweepSpec.model_validate(
        {"space": {"distill.lambda_kd": {"type": "float", "low": 0.1, "high": 1.0}}}
    ).model_dump(mode="json")
    with session_scope(ctx.sessions) as session:
        spec = JobSpec.model_validate(distill_spec(1, 1)).model_dump(mode="json")
        sweep = sweep_repo.create_sweep(
            session, team_id=seeded.team_id, created_by=seeded.user_id, name="s", spec=spec,
            config=config, dataset_id=None, teacher_id=None,
        )
        sweep_id = sweep.id
        trial = sweep_repo.add_trial_job(
            session, sweep=sweep, number=0, params={"distill.lambda_kd": 0.5}, spec=spec,
            spec_hash="h", max_attempts=1,
        )
        trial_id = trial.id
    app = make_celery(settings)
    broker = Broker(settings.resolved_broker_url, VALIDATION_QUEUE)
    later = utcnow() + timedelta(seconds=61)

    # A trial is queued: the sweep is waiting for it, not stalled.
    reap_once(app, now=later)
    assert broker.enqueued(VALIDATION_QUEUE) == []

    # The trial ended and no advance followed it for a lease: sent again.
    with session_scope(ctx.sessions) as session:
        job = session.get(Job, trial_id)
        assert job is not None
        job.state, job.finished_at = "succeeded", utcnow()
    reap_once(app, now=utcnow() + timedelta(seconds=30))
    assert broker.enqueued(VALIDATION_QUEUE) == []  # finished only 30 s ago
    reap_once(app, now=utcnow() + timedelta(seconds=61))
    assert broker.enqueued(VALIDATION_QUEUE) == [(TASK_ADVANCE_SWEEP, [sweep_id])]

    # A paused sweep is left alone.
    with session_scope(ctx.sessions) as session:
        sweep_repo.set_sweep_state(
            session, team_id=seeded.team_id, sweep_id=sweep_id, state="paused"
        )
    reap_once(app, now=utcnow() + timedelta(seconds=61))
    assert broker.enqueued(VALIDATION_QUEUE) == [(TASK_ADVANCE_SWEEP, [sweep_id])]
    ctx.close()

"""The reaper sends again a job whose broker message was lost, once per staleness period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from store import repositories as repo
from store.db import session_scope
from store.models import utcnow
from tests.api.broker_probe import Broker
from tests.worker.harness import make_settings, seed_team, teacher_spec
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

"""A worker killed mid-job: the reaper re-queues it and a second worker resumes its checkpoint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import repositories as repo
from store.db import session_scope
from tests.worker.harness import (
    Deployment,
    deployment_params,
    open_deployment,
    seed_team,
    teacher_spec,
    wait_for,
)
from worker.celery_app import TASK_RUN_JOB, make_celery
from worker.context import build_context

LEASE_SECONDS = 3


# The embedded variant runs by default; the team one (same reaper path, Redis keeps the dead
# worker's message unacked) is marked slow to keep the suite within its time budget.
@pytest.fixture(params=deployment_params(team_slow=True))
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment with a short lease, so that a dead worker's job is re-queued quickly."""
    yield from open_deployment(
        request, tmp_path, lease_seconds=LEASE_SECONDS, heartbeat_seconds=1, max_attempts=3
    )


def test_killed_worker_job_resumes_from_last_checkpoint(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment.settings
    seeded = seed_team(settings, tmp_path)
    ctx = build_context(settings)
    app = make_celery(settings)
    # A teacher job: the same checkpoints and resume as distillation, less to export at the end.
    spec = teacher_spec(seeded.dataset_id, epochs=2, steps=2)
    with session_scope(ctx.sessions) as session:
        job_id = repo.create_job(
            session, team_id=seeded.team_id, created_by=seeded.user_id, kind="teacher",
            spec=spec, dataset_id=seeded.dataset_id, max_attempts=settings.max_attempts,
        ).id

    # Two workers: the one that takes the job dies, the other one's reaper rescues it.
    deployment.start_workers("resume", count=2)
    app.send_task(TASK_RUN_JOB, args=[job_id], queue=settings.job_queue)

    def checkpointed() -> str | None:
        with session_scope(ctx.sessions) as session:
            job = repo.job_by_id(session, job_id=job_id)
            assert job is not None and job.state in ("queued", "running"), job and job.error
            return job.worker_id if job.checkpoint_key is not None else None

    holder = wait_for(checkpointed, timeout=300, interval=0.1, what="the first checkpoint")
    deployment.holder_of(holder).kill()
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None
        assert job.state == "running" and job.attempt == 1 and job.worker_id == holder

    def finished() -> str | None:
        with session_scope(ctx.sessions) as session:
            job = repo.job_by_id(session, job_id=job_id)
            assert job is not None
            return job.state if job.state in ("succeeded", "failed", "canceled") else None

    assert wait_for(finished, timeout=400, what="the resumed job to finish") == "succeeded"
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None
        assert job.attempt == 2 and job.worker_id != holder
        messages = [e.message for e in repo.list_events(session, job_id=job_id)]
    assert any(m.startswith("Re-queued") for m in messages), messages
    resumed = [m for m in messages if m.startswith("Resuming attempt 2")]
    assert resumed, messages
    epoch = int(re.search(r"after epoch (\d+)", resumed[0]).group(1))  # type: ignore[union-attr]
    assert epoch >= 1
    assert any(m.startswith("teacher: training starts at epoch 1") for m in messages), messages
    ctx.close()

"""A worker killed mid-trial: the trial job resumes on another worker and the sweep goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from core.spec import JobSpec
from core.sweep_spec import SweepSpec
from store import repositories as repo
from store.broker import TASK_ADVANCE_SWEEP, VALIDATION_QUEUE
from store.db import session_scope
from store.repositories import sweeps as sweep_repo
from tests.worker.harness import (
    Deployment,
    deployment_params,
    distill_spec,
    open_deployment,
    seed_team,
    wait_for,
)
from worker.celery_app import make_celery
from worker.context import build_context
from worker.sweeps import load_study

LEASE_SECONDS = 3


@pytest.fixture(params=deployment_params(team_slow=True))
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment with a short lease, so that a dead worker's trial is re-queued quickly."""
    yield from open_deployment(
        request, tmp_path, lease_seconds=LEASE_SECONDS, heartbeat_seconds=1, max_attempts=3
    )


def test_killed_worker_trial_resumes_and_the_sweep_finishes(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment.settings
    seeded = seed_team(settings, tmp_path)
    ctx = build_context(settings)
    spec = JobSpec.model_validate(
        distill_spec(seeded.dataset_id, seeded.teacher_id, epochs=2, steps=2, eval_every=1)
    )
    config = SweepSpec.model_validate(
        {
            "space": {"distill.lambda_kd": {"type": "float", "low": 1.0, "high": 2.0}},
            "trials": 1,
            "method": "random",
            "pruner": {"kind": "none"},
        }
    )
    with session_scope(ctx.sessions) as session:
        sweep_id = sweep_repo.create_sweep(
            session, team_id=seeded.team_id, created_by=seeded.user_id, name="resume",
            spec=spec.model_dump(mode="json"), config=config.model_dump(mode="json"),
            dataset_id=seeded.dataset_id, teacher_id=seeded.teacher_id,
        ).id

    deployment.start_workers("sweep-resume", count=2)
    make_celery(settings).send_task(
        TASK_ADVANCE_SWEEP, args=[sweep_id], queue=VALIDATION_QUEUE, routing_key=VALIDATION_QUEUE
    )

    def checkpointed() -> tuple[int, str] | None:
        with session_scope(ctx.sessions) as session:
            trials = sweep_repo.sweep_trials(session, sweep_id=sweep_id)
            if not trials or trials[0].checkpoint_key is None:
                return None
            assert trials[0].state == "running", trials[0].error
            return trials[0].id, str(trials[0].worker_id)

    job_id, holder = wait_for(checkpointed, timeout=300, interval=0.1, what="a checkpoint")
    deployment.holder_of(holder).kill()

    def finished() -> str | None:
        with session_scope(ctx.sessions) as session:
            sweep = sweep_repo.sweep_by_id(session, sweep_id=sweep_id)
            assert sweep is not None
            return sweep.state if sweep.state != "running" else None

    assert wait_for(finished, timeout=400, what="the sweep to finish") == "finished"
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None
        assert job.state == "succeeded" and job.attempt == 2 and job.worker_id != holder
        assert job.trial_state == "complete" and job.trial_value is not None
        messages = [e.message for e in repo.list_events(session, job_id=job_id)]
        sweep = sweep_repo.sweep_by_id(session, sweep_id=sweep_id)
        assert sweep is not None and sweep.best_job_id == job_id
        study = load_study(ctx, sweep, telling=True)
    assert any(m.startswith("Resuming attempt 2") for m in messages), messages
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == job.trial_value
    assert 1 in trial.intermediate_values  # reported before the kill, kept across it
    ctx.close()

"""Metric series and job events written by workers and read by the API."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from store import repositories as repo
from tests.platform_fixtures import TeamContext


def _job_id(session: Session, team: TeamContext) -> int:
    job = repo.create_job(
        session, team_id=team.team_id, created_by=team.user_id, kind="distill", spec={}
    )
    return job.id


def test_metric_series_grouped_and_ordered_by_step(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    job_id, other_job = _job_id(session, team), _job_id(session, team)
    # Written out of order, in two batches, with one NaN (skipped).
    stored = repo.add_metric_points(
        session,
        job_id=job_id,
        points=[
            {"name": "loss/total", "value": 2.0, "step": 2, "epoch": 0},
            {"name": "kd/spatial/p2", "value": 0.5, "step": 1},
            {"name": "loss/total", "value": 3.0, "step": 1, "epoch": 0},
            {"name": "loss/total", "value": float("nan"), "step": 3},
        ],
    )
    assert stored == 3
    repo.add_metric_points(
        session, job_id=other_job, points=[{"name": "lr", "value": 1, "step": 0}]
    )
    session.commit()
    last_id = repo.metric_points(session, job_id=job_id)[-1].id
    repo.add_metric_points(
        session, job_id=job_id, points=[{"name": "eval/AP", "value": 0.25, "step": 2, "epoch": 1}]
    )
    session.commit()

    series = repo.metric_series(session, job_id=job_id)
    assert series == {
        "eval/AP": [{"step": 2, "epoch": 1, "value": 0.25}],
        "kd/spatial/p2": [{"step": 1, "epoch": 0, "value": 0.5}],
        "loss/total": [
            {"step": 1, "epoch": 0, "value": 3.0},
            {"step": 2, "epoch": 0, "value": 2.0},
        ],
    }
    only = repo.metric_series(session, job_id=job_id, names=["loss/total"])
    assert list(only) == ["loss/total"]
    assert list(repo.metric_series(session, job_id=job_id, since_id=last_id)) == ["eval/AP"]
    assert repo.metric_names(session, job_id=job_id) == ["eval/AP", "kd/spatial/p2", "loss/total"]
    assert repo.metric_series(session, job_id=other_job) == {
        "lr": [{"step": 0, "epoch": 0, "value": 1.0}]
    }


def test_events_in_order_and_since_id(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    job_id = _job_id(session, team)
    first = repo.list_events(session, job_id=job_id)
    assert [e.message for e in first] == ["Job queued."]
    repo.add_event(session, job_id=job_id, message="Epoch 1 of 3 done.")
    repo.add_event(session, job_id=job_id, message="Loss is NaN.", level="warning")
    session.commit()
    newer = repo.list_events(session, job_id=job_id, since_id=first[-1].id)
    assert [(e.level, e.message) for e in newer] == [
        ("info", "Epoch 1 of 3 done."),
        ("warning", "Loss is NaN."),
    ]
    assert newer[0].created_at.tzinfo is not None
    assert len(repo.list_events(session, job_id=job_id, limit=2)) == 2

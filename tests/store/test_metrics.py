"""Metric series and job events written by workers and read by the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from store import repositories as repo
from tests.platform_fixtures import TeamContext


def _job_id(session: Session, team: TeamContext) -> int:
    job = repo.create_job(
        session, team_id=team.team_id, created_by=team.user_id, kind="distill", spec={}
    )
    return job.id


Series = dict[str, list[dict[str, Any]]]


def _without_wall_time(series: Series) -> Series:
    """The series without `wall_time` (seconds of this run: not a fixed expectation)."""
    return {
        name: [{k: v for k, v in p.items() if k != "wall_time"} for p in points]
        for name, points in series.items()
    }


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

    series = _without_wall_time(repo.metric_series(session, job_id=job_id))
    # Written without a stage, the points read as the default stage ("train"), without a
    # global step (older points: their steps may restart without saying so).
    staged = {"stage": "train", "global_step": None}
    assert series == {
        "eval/AP": [{"step": 2, "epoch": 1, "value": 0.25, **staged}],
        "kd/spatial/p2": [{"step": 1, "epoch": 0, "value": 0.5, **staged}],
        "loss/total": [
            {"step": 1, "epoch": 0, "value": 3.0, **staged},
            {"step": 2, "epoch": 0, "value": 2.0, **staged},
        ],
    }
    only = repo.metric_series(session, job_id=job_id, names=["loss/total"])
    assert list(only) == ["loss/total"]
    assert list(repo.metric_series(session, job_id=job_id, since_id=last_id)) == ["eval/AP"]
    assert repo.metric_names(session, job_id=job_id) == ["eval/AP", "kd/spatial/p2", "loss/total"]
    other = repo.metric_series(session, job_id=other_job, default_stage="distill")
    assert other["lr"][0]["wall_time"] == 0.0  # the job's first point
    assert _without_wall_time(other) == {
        "lr": [{"step": 0, "epoch": 0, "value": 1.0, "stage": "distill", "global_step": None}]
    }


def test_points_carry_their_stage_and_stages_follow_on_one_axis(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    """Fine-tune steps restart at 1 and are written first here: still drawn after distill."""
    team = team_factory()
    job_id = _job_id(session, team)
    finetune = [{"name": "loss/total", "value": 1.0 - s / 10, "step": s, "stage": "finetune"}
                for s in (1, 2)]  # fmt: skip
    distill = [{"name": "loss/total", "value": 3.0 - s / 10, "step": s, "stage": "distill"}
               for s in (1, 2, 3, 4)]  # fmt: skip
    repo.add_metric_points(session, job_id=job_id, points=finetune)
    repo.add_metric_points(session, job_id=job_id, points=distill)
    # An old point without a stage reads as the job's kind (it counts in that stage's length).
    repo.add_metric_points(
        session, job_id=job_id, points=[{"name": "eval/AP", "value": 0.2, "step": 4}]
    )
    session.commit()
    stored = repo.metric_points(session, job_id=job_id)
    assert [p.stage for p in stored] == ["finetune"] * 2 + ["distill"] * 4 + [None]
    assert repo.stage_offsets(session, job_id=job_id, default_stage="distill") == {
        "distill": 0,
        "finetune": 4,
    }
    series = repo.metric_series(session, job_id=job_id, default_stage="distill")
    assert all(p["wall_time"] >= 0 for points in series.values() for p in points)
    series = _without_wall_time(series)
    loss = series["loss/total"]
    assert [(p["stage"], p["step"], p["global_step"]) for p in loss] == [
        ("distill", 1, 1), ("distill", 2, 2), ("distill", 3, 3), ("distill", 4, 4),
        ("finetune", 1, 5), ("finetune", 2, 6),
    ]  # fmt: skip
    assert series["eval/AP"] == [
        {"step": 4, "epoch": 0, "value": 0.2, "stage": "distill", "global_step": None}
    ]
    # A series asked for alone keeps the job's axis (the offsets come from every series).
    only = repo.metric_series(session, job_id=job_id, names=["loss/total"], since_id=stored[5].id)
    assert only == {}
    assert [p["global_step"] for p in repo.metric_series(
        session, job_id=job_id, names=["loss/total"])["loss/total"]][-1] == 6  # fmt: skip


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

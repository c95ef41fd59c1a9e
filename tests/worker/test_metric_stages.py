"""Metric points carry the stage the worker trained: distill then fine-tune on one axis."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from core.engine.trainer import TrainerState
from store import repositories as repo
from store.db import session_scope
from tests.worker.harness import Seeded, distill_spec, make_settings, seed_team
from worker.context import WorkerContext, build_context
from worker.hooks import DbMetricSink, JobProgressHook
from worker.runner import execute_job


def test_the_progress_hook_tags_each_stage_s_points() -> None:
    sink = DbMetricSink()
    hook = JobProgressHook(None, 1, keeper=None, sink=sink)  # type: ignore[arg-type]
    hook.flush = lambda **_: None  # type: ignore[method-assign]  # no database here
    for stage, steps in (("distill", (1, 2)), ("finetune", (1,))):
        hook.trainer = SimpleNamespace(state=TrainerState(stage=stage))  # type: ignore[assignment]
        hook.before_train()
        for step in steps:
            sink.write(step, 1, {"loss/total": 1.0 / step, "lr": float("nan")})
    points = sink.drain()
    assert [(p["stage"], p["step"]) for p in points] == [
        ("distill", 1),
        ("distill", 2),
        ("finetune", 1),
    ]
    assert {p["name"] for p in points} == {"loss/total"}  # NaN is not stored


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerContext, Seeded]]:
    """An embedded store with a team, a ready dataset and a ready teacher."""
    tmp = tmp_path_factory.mktemp("stages")
    settings = make_settings("embedded", tmp / "data")
    seeded = seed_team(settings, tmp)
    ctx = build_context(settings)
    yield ctx, seeded
    ctx.close()


def test_a_distill_job_with_fine_tune_writes_both_stages(
    embedded: tuple[WorkerContext, Seeded],
) -> None:
    ctx, seeded = embedded
    spec: dict[str, Any] = distill_spec(seeded.dataset_id, seeded.teacher_id, steps=1)
    spec["schedule"]["finetune_epochs"] = 1
    with session_scope(ctx.sessions) as session:
        job_id = repo.create_job(
            session, team_id=seeded.team_id, created_by=seeded.user_id, kind="distill",
            spec=spec, dataset_id=seeded.dataset_id, teacher_id=seeded.teacher_id,
        ).id  # fmt: skip
    assert execute_job(ctx, job_id) == "succeeded"
    with session_scope(ctx.sessions) as session:
        series = repo.metric_series(session, job_id=job_id, default_stage="distill")
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None
        metrics = dict(job.metrics or {})
    loss = series["loss/total"]
    assert [(p["stage"], p["step"], p["global_step"]) for p in loss] == [
        ("distill", 1, 1),
        ("finetune", 1, 2),
    ]
    # The final evaluation (after the fine-tune) sits at the end of the axis, not at step 1.
    assert [(p["stage"], p["global_step"]) for p in series["eval/AP"]][-1] == ("finetune", 2)
    # The evaluation's PR curve and the latency spreads reach metrics.json.
    curve = metrics["student"]["pr_curve"]
    assert len(curve["recall"]) == len(curve["all"]) == 101
    student = metrics["efficiency"]["student"]
    for prefix in ("", "onnx_"):
        assert student[f"{prefix}latency_p10_ms"] <= student[f"{prefix}latency_ms"]
        assert student[f"{prefix}latency_ms"] <= student[f"{prefix}latency_p90_ms"]
        assert student[f"{prefix}latency_repeats"] >= 2

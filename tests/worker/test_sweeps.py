"""Sweeps on the worker without training: Optuna in the platform database, trials as jobs,
budget, best trial, pruning decisions, and the search-space checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from core.spec import JobSpec
from core.sweep_spec import SpaceError, SweepSpec, check_space, set_path, trial_spec
from store import repositories as repo
from store.db import session_scope
from store.models import Job
from store.repositories import sweeps as sweep_repo
from tests.worker.harness import distill_spec, make_settings
from worker.context import WorkerContext, build_context
from worker.sweeps import PruningHook, TrialPruned, advance_sweep, load_study

SPACE = {
    "distill.lambda_kd": {"type": "float", "low": 0.1, "high": 10.0, "log": True},
    "distill.levels.p3.spatial": {"type": "float", "low": 0.0, "high": 2.0},
    "schedule.lr": {"type": "categorical", "choices": [0.001, 0.002]},
}


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    """A worker context on a migrated SQLite database of its own."""
    context = build_context(make_settings("embedded", tmp_path / "data"))
    yield context
    context.close()


def _sweep(ctx: WorkerContext, **config: Any) -> tuple[int, int]:
    with session_scope(ctx.sessions) as session:
        team = repo.create_team(session, name=f"t-{id(config)}")
        spec = JobSpec.model_validate(distill_spec(1, 1)).model_dump(mode="json")
        sweep = sweep_repo.create_sweep(
            session, team_id=team.id, created_by=None, name="s", spec=spec,
            config=SweepSpec.model_validate({"space": SPACE, **config}).model_dump(mode="json"),
            dataset_id=None, teacher_id=None,
        )
        return team.id, sweep.id


def _finish(ctx: WorkerContext, job_id: int, state: str, ap_small: float | None) -> None:
    with session_scope(ctx.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.state = state
        job.metrics = {"student": {"AP_small": ap_small}} if ap_small is not None else None


def test_advance_keeps_parallel_trials_until_the_budget_then_finishes(ctx: WorkerContext) -> None:
    team_id, sweep_id = _sweep(ctx, trials=3, parallel=2, method="random", pruner={"kind": "none"})
    sent: list[int] = []
    first = advance_sweep(ctx, sweep_id, sent.append)
    assert len(first) == 2 and sent == first
    assert advance_sweep(ctx, sweep_id, sent.append) == []  # two in flight already
    with session_scope(ctx.sessions) as session:
        trials = sweep_repo.sweep_trials(session, sweep_id=sweep_id)
        assert [t.trial_number for t in trials] == [0, 1]
        for trial in trials:
            assert trial.state == "queued" and trial.trial_state == "running"
            assert trial.team_id == team_id and trial.kind == "distill"
            params = trial.trial_params or {}
            assert set(params) == set(SPACE)
            assert trial.spec["distill"]["lambda_kd"] == params["distill.lambda_kd"]
            assert trial.spec["distill"]["levels"]["p3"]["spatial"] == pytest.approx(
                params["distill.levels.p3.spatial"]
            )
        lambdas = {t.trial_params["distill.lambda_kd"] for t in trials if t.trial_params}
    assert len(lambdas) == 2  # two draws, not the same seed twice

    _finish(ctx, first[0], "succeeded", 0.25)
    third = advance_sweep(ctx, sweep_id, sent.append)
    assert len(third) == 1
    _finish(ctx, first[1], "failed", None)
    _finish(ctx, third[0], "succeeded", 0.5)
    assert advance_sweep(ctx, sweep_id, sent.append) == []
    with session_scope(ctx.sessions) as session:
        sweep = sweep_repo.sweep_by_id(session, sweep_id=sweep_id)
        assert sweep is not None
        assert sweep.state == "finished" and sweep.finished_at is not None
        assert sweep.best_job_id == third[0] and sweep.best_value == 0.5
        states = [t.trial_state for t in sweep_repo.sweep_trials(session, sweep_id=sweep_id)]
        assert states == ["complete", "failed", "complete"]
        study = load_study(ctx, sweep)
    told = [t.state for t in study.get_trials(deepcopy=False)]
    assert told == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                    optuna.trial.TrialState.COMPLETE]


def test_paused_sweep_queues_nothing_and_cancel_cancels_its_trials(ctx: WorkerContext) -> None:
    team_id, sweep_id = _sweep(ctx, trials=4, parallel=1, method="tpe")
    assert len(advance_sweep(ctx, sweep_id, lambda _: None)) == 1
    with session_scope(ctx.sessions) as session:
        sweep_repo.set_sweep_state(session, team_id=team_id, sweep_id=sweep_id, state="paused")
    first = sweep_repo_trials(ctx, sweep_id)[0]
    _finish(ctx, first, "succeeded", 0.1)
    assert advance_sweep(ctx, sweep_id, lambda _: None) == []
    with session_scope(ctx.sessions) as session:
        sweep_repo.set_sweep_state(session, team_id=team_id, sweep_id=sweep_id, state="running")
    assert len(advance_sweep(ctx, sweep_id, lambda _: None)) == 1
    with session_scope(ctx.sessions) as session:
        sweep_repo.set_sweep_state(session, team_id=team_id, sweep_id=sweep_id, state="canceled")
        with pytest.raises(repo.StateConflict):
            sweep_repo.set_sweep_state(session, team_id=team_id, sweep_id=sweep_id, state="running")
        # Another team sees no sweep.
        assert sweep_repo.get_sweep(session, team_id=team_id + 999, sweep_id=sweep_id) is None
    with session_scope(ctx.sessions) as session:
        jobs = sweep_repo.sweep_trials(session, sweep_id=sweep_id)
        assert [j.state for j in jobs] == ["succeeded", "canceled"]


def sweep_repo_trials(ctx: WorkerContext, sweep_id: int) -> list[int]:
    with session_scope(ctx.sessions) as session:
        return [j.id for j in sweep_repo.sweep_trials(session, sweep_id=sweep_id)]


def _trainer(epoch: int, value: float) -> SimpleNamespace:
    state = SimpleNamespace(
        stage="distill", epoch=epoch, step=epoch * 2, eval_step=epoch * 2,
        eval_metrics={"eval/AP_small": value},
    )
    return SimpleNamespace(state=state)


def test_median_pruner_stops_a_trial_below_the_median(ctx: WorkerContext) -> None:
    _, sweep_id = _sweep(
        ctx, trials=3, parallel=3, method="random",
        pruner={"kind": "median", "startup_trials": 1},
    )
    trials = advance_sweep(ctx, sweep_id, lambda _: None)
    good, bad, better = (PruningHook(ctx, job_id) for job_id in trials)
    good.trainer = _trainer(1, 0.6)  # type: ignore[assignment]
    good.after_epoch()
    _finish(ctx, trials[0], "succeeded", 0.6)
    advance_sweep(ctx, sweep_id, lambda _: None)  # trial 0 is told: it is the median now
    better.trainer = _trainer(1, 0.7)  # type: ignore[assignment]
    better.after_epoch()  # above the median: goes on
    bad.trainer = _trainer(1, 0.1)  # type: ignore[assignment]
    with pytest.raises(TrialPruned, match="pruned after epoch 1"):
        bad.after_epoch()
    with session_scope(ctx.sessions) as session:
        job = session.get(Job, trials[1])
        assert job is not None and job.trial_state == "pruned" and job.trial_value == 0.1
        study = load_study(ctx, sweep_repo.sweep_by_id(session, sweep_id=sweep_id))  # type: ignore[arg-type]
    assert study.trials[1].state == optuna.trial.TrialState.PRUNED
    assert study.trials[2].state == optuna.trial.TrialState.RUNNING


def test_halving_pruner_is_built_and_grid_needs_steps() -> None:
    spec = SweepSpec.model_validate(
        {"space": {"schedule.epochs": {"type": "int", "low": 1, "high": 3}}, "method": "grid"}
    )
    assert spec.grid_size() == 3
    with pytest.raises(ValueError, match="grid search needs 'step'"):
        SweepSpec.model_validate({"space": SPACE, "method": "grid"})
    with pytest.raises(ValueError, match="log-scale parameter needs 'low' > 0"):
        SweepSpec.model_validate({"space": {"schedule.lr": {"type": "float", "low": 0,
                                                            "high": 1, "log": True}}})


def test_space_paths_are_checked_against_the_spec() -> None:
    base = JobSpec.model_validate(distill_spec(1, 1))
    bad = SweepSpec.model_validate(
        {
            "space": {
                "distill.nope": {"type": "float", "low": 0, "high": 1},
                "distill.levels": {"type": "float", "low": 0, "high": 1},
                "data.val_split": {"type": "categorical", "choices": ["test"]},
                "schedule.lr": {"type": "float", "low": -1, "high": 1},
                "distill.levels.p2.context": {"type": "float", "low": 0, "high": 3},
            }
        }
    )
    errors = {e.path: e.message for e in check_space(base, bad)}
    assert set(errors) == {"distill.nope", "distill.levels", "data.val_split", "schedule.lr"}
    assert "no such field" in errors["distill.nope"]
    assert "whole section" in errors["distill.levels"]
    assert "fixed" in errors["data.val_split"]
    assert "refuses" in errors["schedule.lr"]
    raw = base.model_dump(mode="json")
    out = trial_spec(raw, {"distill.levels.p2.spatial": 0.5, "schedule.lr": 0.01})
    assert out["distill"]["levels"]["p2"]["spatial"] == 0.5 and out["schedule"]["lr"] == 0.01
    assert raw["schedule"]["lr"] != 0.01  # a copy
    with pytest.raises(SpaceError):
        set_path(raw, "schedule.lr.x", 1)


def test_optuna_tables_are_known(ctx: WorkerContext) -> None:
    from optuna.storages._rdb.models import BaseModel

    assert set(BaseModel.metadata.tables) == sweep_repo.OPTUNA_TABLES

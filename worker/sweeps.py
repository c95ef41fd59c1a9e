"""Sweeps on the worker: Optuna in the platform's database, trials as jobs, early stopping.

`advance_sweep` tells Optuna the outcome of every finished trial, points the sweep at its
best trial, and asks (and queues) new trials until `parallel` are in flight or the budget is
spent. It runs after every trial job and on `distillery.advance_sweep` (sent by the API on
create and resume); one process at a time advances a sweep (`claim_advance`). `PruningHook`
reports each val evaluation of a trial to Optuna and stops the trial when the pruner says so.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from core.engine.hooks import HookBase, TrainingCanceled
from core.spec import JobSpec
from core.sweep_spec import ParamSpace, SweepSpec, trial_spec
from store import repositories as repo
from store.db import session_scope
from store.models import Job, Sweep, utcnow
from store.repositories import sweeps as sweep_repo
from worker.context import WorkerContext

log = logging.getLogger(__name__)

SendJob = Callable[[int], None]
"""Sends `distillery.run_job(job_id)` to the job queue."""

_STORAGES: dict[tuple[int, str], RDBStorage] = {}


class TrialPruned(TrainingCanceled):
    """The sweep's pruner stopped this trial (the job ends `canceled`, the trial `pruned`)."""


def study_storage(url: str) -> RDBStorage:
    """Optuna's storage on the platform's database (one per process and URL).

    Optuna's tables live beside the platform's; its schema check is skipped because the
    `alembic_version` table holds the platform's revision, not Optuna's.
    """
    key = (os.getpid(), url)  # connections never cross a fork
    storage = _STORAGES.get(key)
    if storage is None:
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
        storage = RDBStorage(url, engine_kwargs=engine_kwargs, skip_compatibility_check=True)
        _STORAGES[key] = storage
    return storage


def distributions(config: SweepSpec) -> dict[str, BaseDistribution]:
    """Optuna distributions of the space (a grid search samples categorical grid values)."""
    out: dict[str, BaseDistribution] = {}
    for path, param in config.space.items():
        out[path] = _distribution(param, grid=config.method == "grid")
    return out


def _distribution(param: ParamSpace, *, grid: bool) -> BaseDistribution:
    if param.type == "categorical" or grid:
        return CategoricalDistribution(param.grid() or [])
    assert param.low is not None and param.high is not None
    if param.type == "int":
        step = int(param.step or 1)
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=step)
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def make_sampler(config: SweepSpec, asked: int) -> optuna.samplers.BaseSampler:
    """The sampler of the method, seeded by the sweep's seed and the trials asked so far.

    Every advance builds a new sampler (any process may advance); the offset keeps random
    draws from repeating.
    """
    seed = config.seed + asked
    if config.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.method == "grid":
        return optuna.samplers.GridSampler(config.grid_space(), seed=config.seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, config.trials // 2))


def make_pruner(config: SweepSpec) -> optuna.pruners.BasePruner:
    """The pruner of the sweep: median, successive halving, a threshold, or none."""
    p = config.pruner
    if p.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs
        )
    if p.kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if p.kind == "threshold":
        warmup = p.warmup_epochs
        if config.direction == "maximize":
            return optuna.pruners.ThresholdPruner(lower=p.threshold, n_warmup_steps=warmup)
        return optuna.pruners.ThresholdPruner(upper=p.threshold, n_warmup_steps=warmup)
    return optuna.pruners.NopPruner()


def load_study(
    ctx: WorkerContext, sweep: Sweep, *, asked: int = 0, telling: bool = False
) -> optuna.Study:
    """The sweep's Optuna study (created on first use), with its sampler and pruner.

    `telling`: for reporting and telling only, with a sampler that asks nothing (the grid
    sampler would call `Study.stop` on its last tell, which only works inside `optimize`).
    """
    config = SweepSpec.model_validate(sweep.config)
    sampler = optuna.samplers.RandomSampler() if telling else make_sampler(config, asked)
    return optuna.create_study(
        study_name=sweep.study_name,
        storage=study_storage(ctx.settings.resolved_database_url),
        direction=config.direction,
        sampler=sampler,
        pruner=make_pruner(config),
        load_if_exists=True,
    )


def objective_value(metrics: dict[str, Any] | None, objective: str) -> float | None:
    """The trial's objective from its metrics.json (student on the val split), if finite."""
    value = ((metrics or {}).get("student") or {}).get(objective)
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return float(value)
    return None


def _tell(study: optuna.Study, number: int, state: TrialState, value: float | None) -> None:
    values = value if state == TrialState.COMPLETE else None
    study.tell(number, values, state=state, skip_if_finished=True)


def _sync_finished(ctx: WorkerContext, sweep_id: int, study: optuna.Study) -> None:
    """Tell Optuna every trial job that ended since the last advance; update the best.

    Optuna writes through its own connections: nothing is written here while it tells (on
    SQLite a pending write of ours would lock it out).
    """
    with session_scope(ctx.sessions) as session:
        sweep = sweep_repo.sweep_by_id(session, sweep_id=sweep_id)
        assert sweep is not None
        config = SweepSpec.model_validate(sweep.config)
        ended = [
            (job.id, job.trial_number, objective_value(job.metrics, config.objective), job.state)
            for job in sweep_repo.sweep_trials(session, sweep_id=sweep_id)
            if job.trial_state == "running" and job.state not in ("queued", "running")
        ]
    outcomes: list[tuple[int, str, float | None]] = []
    for job_id, number, value, state in ended:
        assert number is not None
        if state == "succeeded" and value is not None:
            _tell(study, number, TrialState.COMPLETE, value)
            outcomes.append((job_id, "complete", value))
        else:
            _tell(study, number, TrialState.FAIL, None)
            outcomes.append((job_id, "failed", None))
    importance = parameter_importance(study)
    with session_scope(ctx.sessions) as session:
        for job_id, outcome, value in outcomes:
            sweep_repo.set_trial_outcome(session, job_id=job_id, state=outcome, value=value)
        session.flush()
        best = _best(sweep_repo.sweep_trials(session, sweep_id=sweep_id), config.direction)
        sweep_repo.set_best(
            session,
            sweep_id=sweep_id,
            job_id=best.id if best else None,
            value=best.trial_value if best else None,
            importance=importance,
        )


def parameter_importance(study: optuna.Study) -> dict[str, float] | None:
    """fANOVA importance of each parameter for the objective (None with too few trials)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2 or len({t.value for t in complete}) < 2:
        return None
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:
        log.info("sweep study %s: no importance yet (%s)", study.study_name, exc)
        return None
    return {name: float(value) for name, value in found.items()}


def _best(trials: list[Job], direction: str) -> Job | None:
    done = [t for t in trials if t.trial_state == "complete" and t.trial_value is not None]
    if not done:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(done, key=lambda t: (sign * float(t.trial_value or 0.0), -t.id))


def _budget_left(sweep: Sweep, config: SweepSpec, created: int) -> bool:
    if created >= config.trials:
        return False
    if config.method == "grid" and created >= config.grid_size():
        return False
    spent = utcnow() - sweep.created_at
    return config.hours is None or spent < timedelta(hours=config.hours)


def _advance_once(ctx: WorkerContext, sweep_id: int, send: SendJob) -> list[int]:
    with session_scope(ctx.sessions) as session:
        sweep = sweep_repo.sweep_by_id(session, sweep_id=sweep_id)
        if sweep is None:
            return []
        created, _ = sweep_repo.trial_counts(session, sweep_id=sweep_id)
        study = load_study(ctx, sweep, asked=created)
        teller = load_study(ctx, sweep, telling=True)
    _sync_finished(ctx, sweep_id, teller)
    queued: list[int] = []
    while True:
        with session_scope(ctx.sessions) as session:
            sweep = sweep_repo.sweep_by_id(session, sweep_id=sweep_id)
            if sweep is None or sweep.state != "running":
                return queued
            config = SweepSpec.model_validate(sweep.config)
            created, active = sweep_repo.trial_counts(session, sweep_id=sweep_id)
            if not _budget_left(sweep, config, created):
                if active == 0 and sweep_repo.finish_sweep(
                    session, sweep_id=sweep_id, state="finished"
                ):
                    log.info("sweep %s: finished after %s trials", sweep_id, created)
                return queued
            if active >= config.parallel:
                return queued
            trial = study.ask(distributions(config))
            params = dict(trial.params)
            try:
                spec = JobSpec.model_validate(trial_spec(sweep.spec, params))
            except ValueError as exc:
                # The ends of each range were checked; a value inside it still may not fit.
                teller.tell(trial.number, state=TrialState.FAIL)
                log.warning("sweep %s: trial %s refused: %s", sweep_id, trial.number, exc)
                continue
            job = sweep_repo.add_trial_job(
                session,
                sweep=sweep,
                number=trial.number,
                params=params,
                spec=spec.model_dump(mode="json"),
                spec_hash=spec.spec_hash(),
                max_attempts=ctx.settings.max_attempts,
            )
            message = f"Trial {trial.number} of sweep {sweep_id}: {params}"
            repo.add_event(session, job_id=job.id, message=message)
            job_id = job.id
        send(job_id)
        queued.append(job_id)


def advance_sweep(ctx: WorkerContext, sweep_id: int, send: SendJob) -> list[int]:
    """Tell finished trials, ask and queue new ones; the ids queued (none if another process
    is advancing this sweep: it advances again for us)."""
    queued: list[int] = []
    with ctx.sessions() as session:
        if not sweep_repo.claim_advance(session, sweep_id=sweep_id):
            return queued
    try:
        while True:
            try:
                queued.extend(_advance_once(ctx, sweep_id, send))
            except Exception as exc:
                log.exception("sweep %s: advance failed", sweep_id)
                with session_scope(ctx.sessions) as session:
                    sweep_repo.finish_sweep(
                        session,
                        sweep_id=sweep_id,
                        state="failed",
                        error=f"advancing the sweep failed ({type(exc).__name__}: {exc})",
                    )
                return queued
            with ctx.sessions() as session:
                if sweep_repo.release_advance(session, sweep_id=sweep_id):
                    return queued
    except BaseException:
        with ctx.sessions() as session:
            sweep_repo.release_advance(session, sweep_id=sweep_id)
        raise


def trial_sweep_id(ctx: WorkerContext, job_id: int) -> int | None:
    """The sweep of a trial job, or None for an ordinary job."""
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        return job.sweep_id if job is not None and job.trial_number is not None else None


class PruningHook(HookBase):
    """Reports each val evaluation of the distill stage to Optuna; stops a pruned trial."""

    def __init__(self, ctx: WorkerContext, job_id: int) -> None:
        self.ctx = ctx
        self.job_id = job_id
        with session_scope(ctx.sessions) as session:
            job = repo.job_by_id(session, job_id=job_id)
            assert job is not None and job.sweep_id is not None and job.trial_number is not None
            sweep = sweep_repo.sweep_by_id(session, sweep_id=job.sweep_id)
            assert sweep is not None
            self.number = job.trial_number
            self.objective = SweepSpec.model_validate(sweep.config).objective
            self.study = load_study(ctx, sweep, telling=True)

    def after_epoch(self) -> None:
        """After a new evaluation: report it, and raise TrialPruned if the pruner says so."""
        state = self.trainer.state
        if state.stage != "distill" or state.eval_step != state.step:
            return
        value = state.eval_metrics.get(f"eval/{self.objective}")
        if value is None or not math.isfinite(value):
            return
        storage = self.study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, self.number
        )
        if storage.get_trial(trial_id).state != TrialState.RUNNING:
            return
        trial = optuna.trial.Trial(self.study, trial_id)
        trial.report(value, state.epoch)
        if not trial.should_prune():
            return
        _tell(self.study, self.number, TrialState.PRUNED, None)
        message = (
            f"Trial {self.number} pruned after epoch {state.epoch}: val {self.objective} "
            f"{value:.4f}"
        )
        with session_scope(self.ctx.sessions) as session:
            sweep_repo.set_trial_outcome(session, job_id=self.job_id, state="pruned", value=value)
            repo.add_event(session, job_id=self.job_id, message=message)
        raise TrialPruned(message)


def trial_hooks(ctx: WorkerContext, job_id: int) -> list[HookBase]:
    """The hooks a trial job runs with (none for an ordinary job)."""
    if trial_sweep_id(ctx, job_id) is None:
        return []
    return [PruningHook(ctx, job_id)]

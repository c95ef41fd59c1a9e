"""Core training hooks of the worker: progress and metrics to the job row, lease, checkpoints."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from core.engine.hooks import HookBase, TrainingCanceled
from store import repositories as repo
from store.blob_keys import job_checkpoint_key
from store.db import session_scope
from worker.context import WorkerContext
from worker.lease import LeaseKeeper

log = logging.getLogger(__name__)


class LeaseLost(TrainingCanceled):
    """Training stopped because another worker took over the job (its lease expired)."""


class DbMetricSink:
    """A core MetricSink that buffers points and writes them to the job's metric series, each
    tagged with the stage being trained (`stage`, set by JobProgressHook as a stage starts)."""

    def __init__(self) -> None:
        self._points: list[dict[str, Any]] = []
        self.stage: str | None = None

    def write(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Buffer finite values; `drain` hands them to the next database write."""
        for name, value in values.items():
            number = float(value)
            if math.isfinite(number):
                self._points.append(
                    {
                        "step": step,
                        "epoch": epoch,
                        "name": name,
                        "value": number,
                        "stage": self.stage,
                    }
                )

    def drain(self) -> list[dict[str, Any]]:
        """The buffered points, emptying the buffer."""
        points, self._points = self._points, []
        return points


class JobProgressHook(HookBase):
    """Writes progress and metric points (at most every `flush_seconds` or `flush_steps`),
    stops on cancellation or a lost lease."""

    def __init__(
        self,
        ctx: WorkerContext,
        job_id: int,
        *,
        keeper: LeaseKeeper,
        sink: DbMetricSink,
        flush_seconds: float = 1.0,
        flush_steps: int = 50,
    ) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.keeper = keeper
        self.sink = sink
        self.flush_seconds = flush_seconds
        self.flush_steps = max(flush_steps, 1)
        self._last_flush = 0.0
        self._steps_since_flush = 0

    def _check_lease(self) -> None:
        if self.keeper.lost.is_set():
            raise LeaseLost("the job's lease was lost or a cancel was requested")

    def flush(self, *, message: str | None = None, check_cancel: bool = True) -> None:
        """Write progress and buffered points now; raise if the job is no longer ours to run."""
        self._last_flush = time.monotonic()
        self._steps_since_flush = 0
        with session_scope(self.ctx.sessions) as session:
            held = repo.set_progress(
                session,
                job_id=self.job_id,
                worker_id=self.ctx.worker_id,
                progress=self.trainer.state.progress(),
            )
            if not held:
                session.rollback()
                raise LeaseLost("another worker holds this job now")
            repo.add_metric_points(session, job_id=self.job_id, points=self.sink.drain())
            if message:
                repo.add_event(session, job_id=self.job_id, message=message)
            canceled = check_cancel and repo.cancel_requested(session, job_id=self.job_id)
        if canceled:
            raise TrainingCanceled("canceled by a user")

    def before_train(self) -> None:
        """Record where this stage starts (after a resume: the epoch it resumes from); the
        points written from now on carry this stage."""
        state = self.trainer.state
        self.sink.stage = state.stage
        self.flush(
            message=(
                f"{state.stage}: training starts at epoch {state.epoch} of {state.epochs}, "
                f"step {state.step} of {state.total_steps}"
            )
        )

    def after_step(self) -> None:
        """Check the lease each step; write progress when due."""
        self._check_lease()
        self._steps_since_flush += 1
        due = time.monotonic() - self._last_flush >= self.flush_seconds
        if due or self._steps_since_flush >= self.flush_steps:
            self.flush()

    def after_epoch(self) -> None:
        """Write progress and a line for the finished epoch."""
        state = self.trainer.state
        done = f"{state.stage}: epoch {state.epoch}/{state.epochs} done"
        self.flush(message=f"{done}, loss {state.loss_total:.4f}")

    def after_train(self) -> None:
        """Write what is left in the buffer (also when training ends by an exception)."""
        try:
            self.flush(check_cancel=False)
        except TrainingCanceled:
            pass
        except Exception:
            log.exception("final progress write of job %s failed", self.job_id)


class CheckpointUploader:
    """The `on_checkpoint` callback: upload each epoch's checkpoint, record its key."""

    def __init__(self, ctx: WorkerContext, job_id: int, *, progress: JobProgressHook) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self.progress = progress
        self.key = job_checkpoint_key(job_id)
        self.uploads = 0

    def __call__(self, path: Path) -> None:
        """Upload `path` and point the job row at it."""
        self.ctx.blobs.put_file(self.key, path)
        self.uploads += 1
        epoch = self.progress.trainer.state.epoch
        with session_scope(self.ctx.sessions) as session:
            if not repo.set_checkpoint(
                session, job_id=self.job_id, worker_id=self.ctx.worker_id, key=self.key
            ):
                raise LeaseLost("another worker holds this job now")
            repo.add_event(
                session,
                job_id=self.job_id,
                message=f"checkpoint saved after epoch {epoch}",
            )

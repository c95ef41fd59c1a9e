"""The named Celery tasks; each takes an id, is idempotent and leaves the work to its module."""

from __future__ import annotations

from store.broker import (
    TASK_ADVANCE_SWEEP,
    TASK_REQUEUE_EXPIRED,
    TASK_RUN_JOB,
    TASK_VALIDATE_BACKBONE,
    TASK_VALIDATE_DATASET,
    TASK_VALIDATE_TEACHER,
)
from worker.celery_base import DistilleryCelery
from worker.context import context_for


def register(app: DistilleryCelery) -> None:
    """Register the platform's tasks on `app` (torch is imported only when one runs)."""

    @app.task(name=TASK_VALIDATE_DATASET, ignore_result=True, shared=False)
    def validate_dataset(dataset_id: int) -> str:
        """Unpack and check an uploaded dataset: ready with statistics or invalid with errors."""
        from worker.validation import validate_dataset as run

        return run(context_for(app.settings), int(dataset_id))

    @app.task(name=TASK_VALIDATE_TEACHER, ignore_result=True, shared=False)
    def validate_teacher(teacher_id: int) -> str:
        """Load an uploaded teacher safely against its declared architecture."""
        from worker.validation import validate_teacher as run

        return run(context_for(app.settings), int(teacher_id))

    @app.task(name=TASK_VALIDATE_BACKBONE, ignore_result=True, shared=False)
    def validate_backbone(backbone_id: int) -> str:
        """Load uploaded backbone weights safely and strictly into their declared trunk."""
        from worker.validation import validate_backbone as run

        return run(context_for(app.settings), int(backbone_id))

    @app.task(name=TASK_RUN_JOB, ignore_result=True, shared=False)
    def run_job(job_id: int) -> str:
        """Run a job under a lease; a delivery for a job leased elsewhere or finished is dropped."""
        from worker.runner import execute_job
        from worker.sweeps import advance_sweep, trial_sweep_id

        ctx = context_for(app.settings)
        outcome = execute_job(ctx, int(job_id))
        sweep_id = trial_sweep_id(ctx, int(job_id)) if outcome != "dropped" else None
        if sweep_id is not None:  # a trial ended: tell Optuna, queue the next ones
            advance_sweep(ctx, sweep_id, lambda new_id: send_job(new_id))
        return outcome

    def send_job(job_id: int) -> None:
        queue = app.settings.job_queue
        app.send_task(TASK_RUN_JOB, args=[job_id], queue=queue, routing_key=queue)

    @app.task(name=TASK_ADVANCE_SWEEP, ignore_result=True, shared=False)
    def advance_sweep(sweep_id: int) -> list[int]:
        """Tell a sweep's finished trials to Optuna and queue new trials up to its budget."""
        from worker.sweeps import advance_sweep as advance

        return advance(context_for(app.settings), int(sweep_id), send_job)

    @app.task(name=TASK_REQUEUE_EXPIRED, ignore_result=True, shared=False)
    def requeue_expired() -> list[int]:
        """Re-queue jobs whose lease expired and send them to the job queue again."""
        from worker.reaper import reap_once

        return reap_once(app)

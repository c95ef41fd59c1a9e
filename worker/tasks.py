"""The named Celery tasks; each takes an id, is idempotent and leaves the work to its module."""

from __future__ import annotations

from store.broker import (
    TASK_REQUEUE_EXPIRED,
    TASK_RUN_JOB,
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

    @app.task(name=TASK_RUN_JOB, ignore_result=True, shared=False)
    def run_job(job_id: int) -> str:
        """Run a job under a lease; a delivery for a job leased elsewhere or finished is dropped."""
        from worker.runner import execute_job

        return execute_job(context_for(app.settings), int(job_id))

    @app.task(name=TASK_REQUEUE_EXPIRED, ignore_result=True, shared=False)
    def requeue_expired() -> list[int]:
        """Re-queue jobs whose lease expired and send them to the job queue again."""
        from worker.reaper import reap_once

        return reap_once(app)

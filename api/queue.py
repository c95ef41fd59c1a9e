"""The API's Celery client: sends tasks by name to the worker's queues (never imports worker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import Celery
from kombu import Queue

from store.broker import (
    TASK_RUN_JOB,
    TASK_VALIDATE_BACKBONE,
    TASK_VALIDATE_DATASET,
    TASK_VALIDATE_TEACHER,
    VALIDATION_QUEUE,
    broker_url_for,
)
from store.settings import Settings

logger = logging.getLogger(__name__)


# A request should fail fast with a 503 rather than hang while the broker is away.
_PUBLISH_RETRY = {
    "max_retries": 2,
    "interval_start": 0.0,
    "interval_step": 0.5,
    "interval_max": 1.0,
}
_CONNECT_TIMEOUT_S = 3.0


class QueueUnavailable(RuntimeError):
    """The broker could not be reached to enqueue a task."""


def make_celery_client(settings: Settings) -> Celery:
    """A send-only Celery app on the settings' broker, with the worker's queue layout."""
    url = broker_url_for(settings)
    app = Celery("distillery-api", broker=url, set_as_current=False)
    job_queue = settings.job_queue
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        broker_connection_timeout=_CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=False,
        task_default_queue=VALIDATION_QUEUE,
        # The same queues (names and routing keys) the worker declares and consumes.
        task_queues=[Queue(job_queue, routing_key=job_queue), Queue(VALIDATION_QUEUE)],
        task_send_sent_event=False,
    )
    return app


@dataclass
class TaskQueue:
    """Enqueues the platform's tasks (an id each) on the right queue."""

    celery: Celery
    job_queue: str

    def send(self, name: str, object_id: int, *, queue: str) -> str:
        """Send task `name` with `[object_id]` to `queue`; returns the task id."""
        try:
            result = self.celery.send_task(
                name,
                args=[object_id],
                queue=queue,
                routing_key=queue,
                retry=True,
                retry_policy=_PUBLISH_RETRY,
            )
        except Exception as exc:  # kombu raises transport-specific errors
            logger.warning("could not enqueue %s(%s) on %s: %s", name, object_id, queue, exc)
            raise QueueUnavailable(f"the task queue is unavailable: {exc}") from exc
        return str(result.id)

    def validate_dataset(self, dataset_id: int) -> str:
        """Ask a worker to validate an uploaded dataset."""
        return self.send(TASK_VALIDATE_DATASET, dataset_id, queue=VALIDATION_QUEUE)

    def validate_teacher(self, teacher_id: int) -> str:
        """Ask a worker to validate an uploaded teacher checkpoint."""
        return self.send(TASK_VALIDATE_TEACHER, teacher_id, queue=VALIDATION_QUEUE)

    def validate_backbone(self, backbone_id: int) -> str:
        """Ask a worker to check uploaded backbone weights."""
        return self.send(TASK_VALIDATE_BACKBONE, backbone_id, queue=VALIDATION_QUEUE)

    def run_job(self, job_id: int) -> str:
        """Ask a GPU worker to run a job."""
        return self.send(TASK_RUN_JOB, job_id, queue=self.job_queue)

    def ping(self, *, timeout: float = 2.0) -> None:
        """Open a broker connection or raise (used by /readyz)."""
        with self.celery.connection_for_write() as conn:
            # One attempt, no back-off sleep: a probe must answer quickly either way.
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=timeout
            )

    def close(self) -> None:
        """Release the broker connection pool."""
        self.celery.close()

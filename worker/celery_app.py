"""The one place the Celery app is configured: queues, reliability options and the brokers."""

from __future__ import annotations

import functools
from typing import Any

from kombu import Queue

from store.broker import (
    TASK_REQUEUE_EXPIRED,
    TASK_RUN_JOB,
    TASK_VALIDATE_BACKBONE,
    TASK_VALIDATE_DATASET,
    TASK_VALIDATE_TEACHER,
    VALIDATION_QUEUE,
    broker_url_for,
)
from store.settings import Settings
from worker import reaper, tasks
from worker.celery_base import DistilleryCelery

__all__ = ["DistilleryCelery", "make_celery"]

# A job may run for a day; the broker must not hand its message to another worker meanwhile
# (Redis re-delivers an unacked message after visibility_timeout), so the hard time limit
# stays below the visibility timeout. The lease in the job row remains the real guard.
JOB_TIME_LIMIT_S = 24 * 3600
JOB_SOFT_TIME_LIMIT_S = JOB_TIME_LIMIT_S - 300
VISIBILITY_TIMEOUT_S = JOB_TIME_LIMIT_S + 3600
VALIDATION_HARD_LIMIT_GRACE_S = 60
"""A validation gets its soft limit (the watchdog's bound) and this long more before a kill."""


def broker_transport_options(url: str) -> dict[str, Any]:
    """Transport options per broker; the SQL transport passes every option to create_engine."""
    if url.startswith(("redis://", "rediss://", "sentinel://")):
        return {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    return {}


def make_celery(settings: Settings) -> DistilleryCelery:
    """The Celery app of a worker (or a sender) on `settings`' broker, tasks registered."""
    broker = broker_url_for(settings)
    app = DistilleryCelery(settings, main="distillery", broker=broker, set_as_current=False)
    job_queue = settings.job_queue
    # A validation past the watchdog's bound is failed by the reaper; the soft limit also frees
    # the worker slot (SoftTimeLimitExceeded marks the row invalid like any other error) and
    # the hard limit ends a child stuck in C code. Time limits need the prefork pool.
    validation_limits = {
        "soft_time_limit": settings.validation_timeout_seconds,
        "time_limit": settings.validation_timeout_seconds + VALIDATION_HARD_LIMIT_GRACE_S,
    }
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        # Re-deliver a task whose worker died instead of losing it, one message at a time.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_max_tasks_per_child=None,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_transport_options(broker),
        task_time_limit=JOB_TIME_LIMIT_S,
        task_soft_time_limit=JOB_SOFT_TIME_LIMIT_S,
        task_default_queue=VALIDATION_QUEUE,
        task_queues=[Queue(job_queue, routing_key=job_queue), Queue(VALIDATION_QUEUE)],
        task_routes={
            TASK_RUN_JOB: {"queue": job_queue, "routing_key": job_queue},
            TASK_VALIDATE_DATASET: {"queue": VALIDATION_QUEUE},
            TASK_VALIDATE_TEACHER: {"queue": VALIDATION_QUEUE},
            TASK_VALIDATE_BACKBONE: {"queue": VALIDATION_QUEUE},
            TASK_REQUEUE_EXPIRED: {"queue": VALIDATION_QUEUE},
        },
        task_annotations={
            TASK_VALIDATE_DATASET: validation_limits,
            TASK_VALIDATE_TEACHER: validation_limits,
            TASK_VALIDATE_BACKBONE: validation_limits,
        },
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    # Registers the tasks on this app and the lease reaper as a worker boot step.
    tasks.register(app)
    app.steps["worker"].add(reaper.ReaperStep)
    return app


@functools.cache
def _module_app() -> DistilleryCelery:
    return make_celery(Settings())


def __getattr__(name: str) -> Any:
    # `celery -A worker.celery_app` looks up `app`; build it from the environment only then,
    # never at import time (tests and `distillery worker` build their own).
    if name == "app":
        return _module_app()
    raise AttributeError(name)

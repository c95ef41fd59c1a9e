"""The lease reaper: re-queues jobs whose worker stopped renewing its lease, and resends them;
its watchdog fails uploads whose validation never finished, and it advances sweeps left idle."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from celery import bootsteps

from store import repositories as repo
from store.broker import TASK_ADVANCE_SWEEP, TASK_RUN_JOB, VALIDATION_QUEUE
from store.db import session_scope
from store.repositories import sweeps as sweep_repo
from worker.celery_base import DistilleryCelery
from worker.context import context_for

log = logging.getLogger(__name__)


def reap_once(app: DistilleryCelery, *, now: datetime | None = None) -> list[int]:
    """Re-queue expired jobs (failing those without attempts left) and send each again.

    Jobs queued longer than `settings.stale_queue_seconds` are sent again too: a serverless
    broker loses a message delivered to a worker that dies before it claims the job. Uploads
    still validating after `settings.validation_timeout_seconds` are marked invalid (the
    watchdog: a validation killed with its worker would otherwise stay `validating`). Running
    sweeps with nothing in flight and nothing finished for a lease are advanced again (a
    worker killed between a trial and its advance). Returns the ids of the jobs sent.
    """
    ctx = context_for(app.settings)
    now = now or datetime.now(UTC)
    timeout = app.settings.validation_timeout_seconds
    with session_scope(ctx.sessions) as session:
        job_ids = repo.requeue_expired(session, now=now)
        stale = repo.take_stale_queued_jobs(
            session, older_than=now - timedelta(seconds=app.settings.stale_queue_seconds), now=now
        )
        failed = repo.fail_stale_validations(
            session,
            older_than=now - timedelta(seconds=timeout),
            message=f"validation did not finish within {timeout} s; upload again",
            now=now,
        )
        failed["backbones"] = repo.fail_stale_backbone_validations(
            session,
            older_than=now - timedelta(seconds=timeout),
            message=f"validation did not finish within {timeout} s; upload again",
        )
        stalled = sweep_repo.stalled_sweeps(
            session, idle_before=now - timedelta(seconds=app.settings.lease_seconds), now=now
        )
    for kind, ids in failed.items():
        for row_id in ids:
            log.warning(
                "%s %s: validation did not finish within %s s, marked invalid",
                kind[:-1],
                row_id,
                timeout,
            )
    queue = app.settings.job_queue
    for job_id in job_ids:
        log.warning("job %s: lease expired, re-queued", job_id)
    for job_id in stale:
        log.warning("job %s: queued for long without a worker taking it, sent again", job_id)
    for job_id in [*job_ids, *stale]:
        app.send_task(TASK_RUN_JOB, args=[job_id], queue=queue, routing_key=queue)
    for sweep_id in stalled:
        log.warning("sweep %s: idle with no trial in flight, advanced again", sweep_id)
        app.send_task(
            TASK_ADVANCE_SWEEP,
            args=[sweep_id],
            queue=VALIDATION_QUEUE,
            routing_key=VALIDATION_QUEUE,
        )
    return [*job_ids, *stale]


def reap_interval(lease_seconds: float) -> float:
    """How often to look for expired leases: half a lease (at least every 0.5 s)."""
    return max(lease_seconds / 2, 0.5)


class Reaper:
    """A daemon thread calling `reap_once` every half lease."""

    def __init__(self, app: DistilleryCelery, *, interval: float | None = None) -> None:
        self.app = app
        self.interval = interval or reap_interval(app.settings.lease_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-reaper", daemon=True)

    def start(self) -> Reaper:
        """Start reaping in the background."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                reap_once(self.app)
            except Exception:
                # The database or broker may be briefly away; the next round tries again.
                log.exception("lease reaper round failed")

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class ReaperStep(bootsteps.StartStopStep):
    """A worker boot step running the Reaper in the worker's main process."""

    # After the pool: prefork children are forked before the thread and its connections exist.
    requires: ClassVar[set[str]] = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.reaper: Reaper | None = None

    def start(self, worker: Any) -> None:
        """Start the reaper thread."""
        self.reaper = Reaper(worker.app).start()

    def stop(self, worker: Any) -> None:
        """Stop the reaper thread."""
        if self.reaper is not None:
            self.reaper.stop()
            self.reaper = None

"""The heartbeat that keeps a job's lease alive while the worker holds it."""

from __future__ import annotations

import logging
import threading

from store.db import session_scope
from store.repositories import renew_lease
from worker.context import WorkerContext

log = logging.getLogger(__name__)


class LeaseKeeper:
    """A thread renewing the lease of one job; `lost` turns True when renewal is refused."""

    def __init__(self, ctx: WorkerContext, job_id: int, *, interval: float | None = None) -> None:
        self.ctx = ctx
        self.job_id = job_id
        settings = ctx.settings
        # Renew well within the lease even if heartbeat_seconds was set close to it.
        default = min(float(settings.heartbeat_seconds), settings.lease_seconds / 3)
        self.interval = max(interval if interval is not None else default, 0.05)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-job-{job_id}", daemon=True
        )

    def start(self) -> LeaseKeeper:
        """Start renewing in the background."""
        self._thread.start()
        return self

    def renew(self) -> bool:
        """Renew once now; False (and `lost` set) if the lease was lost or cancel requested."""
        try:
            with session_scope(self.ctx.sessions) as session:
                ok = renew_lease(
                    session,
                    job_id=self.job_id,
                    worker_id=self.ctx.worker_id,
                    lease_seconds=self.ctx.settings.lease_seconds,
                )
        except Exception:
            # A database hiccup is not a lost lease; the next beat tries again.
            log.exception("renewing the lease of job %s failed", self.job_id)
            return not self.lost.is_set()
        if not ok:
            self.lost.set()
        return ok

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.renew():
                return

    def stop(self) -> None:
        """Stop renewing (the lease then simply expires or the job is finished)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

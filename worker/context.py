"""Per-process resources of a worker: settings, database sessions, blob store, worker id."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from store.blobs import BlobStore, make_blob_store
from store.db import Engine, Session, make_engine, make_session_factory, sessionmaker
from store.settings import Settings


def new_worker_id() -> str:
    """A worker id unique per process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerContext:
    """What tasks need, built once per process (after a prefork child was forked)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    worker_id: str = field(default_factory=new_worker_id)

    @property
    def work_dir(self) -> Path:
        """Local scratch space: dataset cache and per-job folders."""
        path = self.settings.data_dir.resolve() / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def build_context(settings: Settings) -> WorkerContext:
    """A fresh context on `settings`."""
    # Pinged on every checkout, as before: a worker checks out seldom (heartbeats, metric
    # batches), so the round trip costs nothing, and a restarted database never fails a lease.
    engine = make_engine(settings.resolved_database_url, pool_pre_ping=True)
    return WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        blobs=make_blob_store(settings),
    )


_contexts: dict[tuple[int, int], WorkerContext] = {}


def context_for(settings: Settings) -> WorkerContext:
    """The context of this process for `settings` (a forked child builds its own)."""
    # Connections must never cross a fork, hence the pid in the key.
    pid = os.getpid()
    for other in [k for k in _contexts if k[0] != pid]:
        # Inherited from the parent: forget its pool without closing the parent's sockets.
        _contexts.pop(other).engine.dispose(close=False)
    key = (pid, id(settings))
    ctx = _contexts.get(key)
    if ctx is None:
        ctx = build_context(settings)
        _contexts[key] = ctx
    return ctx

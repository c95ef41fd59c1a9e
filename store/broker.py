"""The serverless broker of the embedded deployment: kombu's SQL transport, made race-safe."""

from __future__ import annotations

import time
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SqlAlchemyChannel
from kombu.transport.sqlalchemy import Transport as SqlAlchemyTransport
from sqlalchemy.exc import IntegrityError, OperationalError

from store.settings import Settings

FAST_SQLA_ALIAS = "distillery-sqla"

# The task names and the validation queue: the contract between the API (which sends by name
# and never imports worker) and the worker (which registers the tasks).
TASK_VALIDATE_DATASET = "distillery.validate_dataset"
TASK_VALIDATE_TEACHER = "distillery.validate_teacher"
TASK_VALIDATE_BACKBONE = "distillery.validate_backbone"
TASK_RUN_JOB = "distillery.run_job"
TASK_REQUEUE_EXPIRED = "distillery.requeue_expired"
TASK_ADVANCE_SWEEP = "distillery.advance_sweep"
VALIDATION_QUEUE = "default"
_OPEN_ATTEMPTS = 5


class RaceSafeChannel(SqlAlchemyChannel):
    """kombu's SQL channel, where processes opening a fresh broker or declaring one queue
    together no longer crash one another."""

    def _open(self) -> Any:
        # kombu's create_all checks for each table, then creates it: two processes opening the
        # same fresh SQLite broker at once both see it missing and the loser dies of "table
        # kombu_message already exists" (or of "database is locked"). A retry finds the
        # tables there and creates nothing.
        for attempt in range(_OPEN_ATTEMPTS - 1):
            try:
                return super()._open()
            except OperationalError:
                time.sleep(0.05 * (attempt + 1))
        return super()._open()

    def _get_or_create(self, queue: str) -> Any:
        # kombu guards this with a thread mutex only: the API and a worker (or two workers)
        # starting together both INSERT the queue row and the loser dies of IntegrityError.
        for _attempt in range(3):
            try:
                return super()._get_or_create(queue)
            except (IntegrityError, OperationalError):
                self.session.rollback()
        return super()._get_or_create(queue)


class FastSqlAlchemyTransport(SqlAlchemyTransport):
    """kombu's SQLAlchemy transport polling every 0.1 s instead of every second."""

    Channel = RaceSafeChannel
    # A transport option would be handed to create_engine and crash, hence a subclass.
    polling_interval = 0.1


def _fast_sqla_transport() -> type[FastSqlAlchemyTransport]:
    return FastSqlAlchemyTransport


def register_fast_sqla_transport() -> None:
    """Make `distillery-sqla+<url>` resolve to the fast-polling, race-safe SQL transport."""
    # A callable alias, not a 'module:Class' string: `celery -A` drops the working directory
    # from sys.path after import, and the string would then fail to import in the worker.
    TRANSPORT_ALIASES[FAST_SQLA_ALIAS] = _fast_sqla_transport  # type: ignore[assignment]


def broker_url_for(settings: Settings) -> str:
    """The broker URL to connect to (the serverless SQL broker gets the transport above)."""
    url = settings.resolved_broker_url
    if url.startswith("sqla+"):
        register_fast_sqla_transport()
        if url.startswith("sqla+sqlite:"):
            # SQLite creates the file, not its folder.
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return FAST_SQLA_ALIAS + url[len("sqla") :]
    return url

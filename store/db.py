"""Engines and session factories for SQLite (embedded) and PostgreSQL (team); no singletons.

The rest of the platform reaches SQLAlchemy only through `store` (an import-linter contract):
`Session`, `sessionmaker`, `Engine` and `make_url` are re-exported here for type annotations.

Round trips. A PostgreSQL connection is not pinged on every checkout (that is one more round
trip per request): it is pinged only after it sat idle in the pool for `IDLE_PING_SECONDS`,
connections are recycled after `POOL_RECYCLE_SECONDS`, and a request's first statement runs
again once on a fresh connection when its pooled one turns out dead (`retry_if_disconnected`).
Read-only requests use `make_read_session_factory`: no BEGIN and no ROLLBACK around them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "DATABASE_ERRORS",
    "IDLE_PING_SECONDS",
    "POOL_RECYCLE_SECONDS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Engine",
    "Session",
    "SessionFactory",
    "ensure_sqlite_folder",
    "is_database_outage",
    "is_sqlite",
    "make_engine",
    "make_read_session_factory",
    "make_session_factory",
    "make_url",
    "ping",
    "retry_if_disconnected",
    "session_scope",
    "sessionmaker",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000

IDLE_PING_SECONDS = 30.0
"""A pooled PostgreSQL connection idle this long is pinged before use (a restart, a proxy
dropping idle connections); one in steady use is not, so a request costs no extra round trip."""

POOL_RECYCLE_SECONDS = 1800
"""PostgreSQL connections older than this are replaced at checkout (server or proxy timeouts)."""

SessionFactory = sessionmaker[Session]
"""What `make_session_factory` returns: call it for a new session."""

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    """Whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file (SQLite creates the file, not folders)."""
    parsed = make_url(url)
    database = str(parsed.database or "")
    not_a_path = database in ("", ":memory:") or database.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and not not_a_path:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits instead of failing with
    # "database is locked"; SQLite leaves foreign keys off unless asked on every connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _note_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_after_idle(engine: Engine, idle_seconds: float) -> Callable[[Any, Any, Any], None]:
    """A checkout listener: ping a connection that sat idle; a dead one is replaced."""

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # fresh, or in steady use: no round trip
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):  # type: ignore[arg-type]
                # The pool discards this connection and checks out another (or a new one).
                raise DisconnectionError("the pooled connection was dead") from exc
            raise

    return checkout


def make_engine(url: str, *, idle_ping_seconds: float = IDLE_PING_SECONDS, **kwargs: Any) -> Engine:
    """An engine for `url`: SQLite with WAL, busy timeout and foreign keys; PostgreSQL with
    connections recycled after `POOL_RECYCLE_SECONDS` and pinged only after `idle_ping_seconds`
    in the pool (not on every checkout, unless `pool_pre_ping=True` is asked for)."""
    if is_sqlite(url):
        ensure_sqlite_folder(url)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkin", _note_checkin)
        event.listen(engine, "checkout", _ping_after_idle(engine, idle_ping_seconds))
    return engine


def make_session_factory(engine: Engine) -> SessionFactory:
    """A session factory bound to `engine`; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> SessionFactory:
    """Sessions for requests that only read: no transaction round trips around them.

    PostgreSQL runs each statement in autocommit (no BEGIN before the first, no ROLLBACK when
    the session closes); pysqlite opens no transaction for SELECTs anyway. A write made in such
    a session (the throttled token last-use) commits by itself on PostgreSQL; call
    `session.commit()` after it for SQLite.
    """
    if engine.dialect.name == "sqlite":
        return make_session_factory(engine)
    return sessionmaker(
        bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


def retry_if_disconnected(session: Session, read: Callable[[Session], T]) -> T:
    """`read(session)`, run once more on a fresh connection if the pooled one was dead.

    Only for a session's first statement, which reads: nothing in the session is lost by the
    rollback, and the pool has dropped the dead connection (and those as old) by then.
    """
    try:
        return read(session)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        session.rollback()
        return read(session)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success, rolls back on error and is always closed."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def ping(factory: sessionmaker[Session]) -> None:
    """Run one trivial statement: raises the driver's error if the database cannot answer."""
    with factory() as session:
        session.execute(text("SELECT 1"))


DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, PoolTimeoutError)
"""Exceptions of the database layer (an API maps the outages among them to 503)."""


def is_database_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (not that a statement is wrong)."""
    if isinstance(exc, PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    )

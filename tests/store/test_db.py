"""Engines and sessions: SQLite pragmas, folder creation, commit and rollback, dead
PostgreSQL connections (pinged only after idling, replaced; a first read runs again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from store.db import (
    is_sqlite,
    make_engine,
    make_read_session_factory,
    make_session_factory,
    retry_if_disconnected,
    session_scope,
)
from store.migrate import upgrade
from store.models import Membership, Team


def test_sqlite_engine_pragmas_and_folder(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'folder' / 'd.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    assert (tmp_path / "new" / "folder" / "d.db").is_file()
    engine.dispose()


def test_session_scope_commits_and_rolls_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        session.add(Team(name="kept"))
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        session.add(Team(name="dropped"))
        session.flush()
        raise RuntimeError("boom")
    # Foreign keys are enforced on SQLite too.
    with pytest.raises(IntegrityError), session_scope(factory) as session:
        session.add(Membership(team_id=9999, user_id=9999, role="admin"))
    with session_scope(factory) as session:
        assert [t.name for t in session.query(Team).all()] == ["kept"]
    engine.dispose()


def _terminate(pid: int) -> None:
    import psycopg

    from tests.platform_fixtures import PG_ADMIN_URL

    with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.postgres
def test_postgres_pings_only_idle_connections_and_replaces_dead_ones(pg_url: str) -> None:
    pings: list[int] = []
    # Pinged after any idle time at all: a dead pooled connection is swapped before use.
    eager = make_engine(pg_url, idle_ping_seconds=0.0)
    original_ping = eager.dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(1)
        return original_ping(dbapi_connection)

    eager.dialect.do_ping = counting_ping  # type: ignore[method-assign]
    try:
        pid = _backend_pid(eager)
        _terminate(pid)
        assert _backend_pid(eager) != pid  # no error: the ping found it dead
        assert len(pings) == 1
    finally:
        eager.dispose()
    assert not make_engine(pg_url).pool._pre_ping  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_a_sessions_first_read_runs_again_on_a_dead_connection(pg_url: str) -> None:
    engine = make_engine(pg_url)  # in steady use: no ping before the statement
    factory = make_session_factory(engine)
    try:
        pid = _backend_pid(engine)
        _terminate(pid)
        with factory() as session:
            again = retry_if_disconnected(
                session, lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            )
        assert again != pid
        # Without the retry the same situation is an error that says the connection died.
        pid = _backend_pid(engine)
        _terminate(pid)
        with factory() as session, pytest.raises(DBAPIError) as raised:
            session.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
    finally:
        engine.dispose()


def test_read_sessions_open_no_transaction(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with make_read_session_factory(engine)() as session:
            session.execute(text("SELECT 1"))
            raw = session.connection().connection.dbapi_connection
            if is_sqlite(db_url):
                assert raw is not None and not raw.in_transaction  # type: ignore[attr-defined]
            else:
                from psycopg.pq import TransactionStatus

                status = raw.info.transaction_status  # type: ignore[attr-defined, union-attr]
                assert status == TransactionStatus.IDLE
    finally:
        engine.dispose()

"""Database round trips of a job list request: one for auth, one for the page.

Counted two ways: every statement SQLAlchemy sends (`before_cursor_execute`, both backends)
and commits; and on PostgreSQL every round trip on the wire (libpq's protocol trace counts
each ReadyForQuery: BEGIN, ROLLBACK, COMMIT and pings included, which no statement event
shows).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from store.models import ApiToken, utcnow
from store.tokens import hash_token
from tests.platform_fixtures import PG_ADMIN_URL, TeamContext

API = "/api/v1"


@dataclass
class Counts:
    """What one or more requests sent to the database."""

    statements: list[str] = field(default_factory=list)
    commits: int = 0


@contextmanager
def counted(engine: Engine) -> Iterator[Counts]:
    """Count the statements and commits sent through `engine` (read sessions included)."""
    counts = Counts()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts.statements.append(statement)

    def on_commit(_conn: Any) -> None:
        counts.commits += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


class WireTrace:
    """libpq's protocol trace of every connection `engine` checks out, in one file."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.pgconn.trace(self.fd)
        dbapi_connection.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )

    def _checkin(self, dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None and not dbapi_connection.closed:
            dbapi_connection.pgconn.untrace()  # flushes what was traced

    def round_trips(self) -> int:
        """Round trips so far: the server answers each one with ReadyForQuery."""
        lines = self.path.read_text().splitlines()
        return sum(1 for line in lines if line.startswith("B\t") and "\tReadyForQuery" in line)

    def __enter__(self) -> WireTrace:
        # Before the engine's own checkout listener (its idle ping must show too).
        event.listen(self.engine, "checkout", self._checkout, insert=True)
        event.listen(self.engine, "checkin", self._checkin)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "checkout", self._checkout)
        event.remove(self.engine, "checkin", self._checkin)
        os.close(self.fd)


def _seed_jobs(factory: sessionmaker[Session], team: TeamContext, count: int) -> None:
    with session_scope(factory) as s:
        for i in range(count):
            repo.create_job(
                s,
                team_id=team.team_id,
                created_by=team.user_id,
                kind="distill",
                spec={"kind": "distill", "data": {"dataset_id": 1}},
                name=f"run {i}",
            )


def _age_token(factory: sessionmaker[Session], token: str) -> None:
    """Make the token's last noted use two minutes old: the next request notes it again."""
    with session_scope(factory) as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .values(last_used_at=utcnow() - timedelta(minutes=2))
        )


def _last_used(factory: sessionmaker[Session], token: str) -> Any:
    with factory() as s:
        return s.scalar(
            select(ApiToken.last_used_at).where(ApiToken.token_hash == hash_token(token))
        )


def _list(client: TestClient, team: TeamContext, query: str = "limit=20") -> dict[str, Any]:
    response = client.get(f"{API}/jobs?{query}", headers=team.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def listed_team(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> TeamContext:
    """A team with jobs whose token's use is already noted (a first request was made)."""
    _seed_jobs(session_factory, team, 25)
    _list(client, team)
    return team


def test_a_list_request_is_two_statements_and_no_commit(
    client: TestClient, listed_team: TeamContext
) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    for query in ("limit=20", "limit=20&offset=20", "state=queued&q=run&limit=5"):
        with counted(engine) as counts:
            body = _list(client, listed_team, query)
        assert body["count"] == 25 and body["data"]
        assert len(counts.statements) <= 2, counts.statements
        assert counts.commits == 0
    # Keyset pages cost the same.
    cursor = _list(client, listed_team, "limit=10")["next_cursor"]
    with counted(engine) as counts:
        body = _list(client, listed_team, f"limit=10&after={cursor}")
    assert body["data"][0]["name"] == "run 14"
    assert len(counts.statements) <= 2 and counts.commits == 0
    # An empty page past the end still carries the total, in the same statement.
    with counted(engine) as counts:
        body = _list(client, listed_team, "offset=1000")
    assert (body["data"], body["count"], body["next_cursor"]) == ([], 25, None)
    assert len(counts.statements) <= 2


def test_the_token_use_is_noted_at_most_once_a_minute_as_a_third_statement(
    client: TestClient, listed_team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    _age_token(session_factory, listed_team.token)
    before = _last_used(session_factory, listed_team.token)
    with counted(engine) as counts:
        _list(client, listed_team)
    assert len(counts.statements) == 3, counts.statements
    assert sum(s.lstrip().upper().startswith("UPDATE") for s in counts.statements) == 1
    noted = _last_used(session_factory, listed_team.token)
    assert noted > before
    # Noted just now: the next request writes nothing.
    with counted(engine) as counts:
        _list(client, listed_team)
    assert len(counts.statements) == 2 and counts.commits == 0
    assert _last_used(session_factory, listed_team.token) == noted


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgres_round_trips_on_the_wire(
    client: TestClient,
    listed_team: TeamContext,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """No BEGIN, ROLLBACK, COMMIT or ping around a list request: two round trips, three when
    the token's use is noted."""
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    with WireTrace(engine, tmp_path / "trace.txt") as trace:
        for _ in range(3):
            start = trace.round_trips()
            _list(client, listed_team)
            assert trace.round_trips() - start == 2, trace.path.read_text()[-2000:]
        _age_token(session_factory, listed_team.token)
        start = trace.round_trips()
        _list(client, listed_team)
        assert trace.round_trips() - start == 3
    assert "BEGIN" not in trace.path.read_text()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_dead_pooled_connection_is_replaced_without_an_error(
    client: TestClient, listed_team: TeamContext
) -> None:
    """The server dropped the pooled connection (a restart, a proxy): the request still
    answers, its first statement having run again on a fresh connection."""
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    engine.dispose()
    _list(client, listed_team)  # the pool now holds exactly one connection
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    body = _list(client, listed_team)
    assert body["count"] == 25
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_other_reads_skip_the_commit_too(
    client: TestClient, listed_team: TeamContext, team_factory: Callable[..., TeamContext]
) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    job_id = _list(client, listed_team)["data"][0]["id"]
    with counted(engine) as counts:
        assert client.get(f"{API}/jobs/{job_id}", headers=listed_team.headers).status_code == 200
        assert client.get(f"{API}/me", headers=listed_team.headers).status_code == 200
    assert counts.commits == 0
    # A stranger's token is refused in the same single query.
    stranger = team_factory()
    headers = {**stranger.headers, "X-Team-Id": str(listed_team.team_id)}
    with counted(engine) as counts:
        response = client.get(f"{API}/jobs", headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"][0]["loc"] == ["header", "X-Team-Id"]
    assert len([s for s in counts.statements if not s.lstrip().upper().startswith("UPDATE")]) == 1

"""Shared pytest fixtures of the platform: migrated databases, sessions, blob stores, teams.

Registered for the whole suite through `pytest_plugins` in tests/conftest.py.

- `pg_url`: a fresh PostgreSQL database for the test session (migrated, dropped at the end).
- `sqlite_url`: a migrated SQLite file for the test session.
- `db_url`: parametrised over both ("sqlite", "postgres"); `engine`, `session_factory` and
  `session` follow it.
- `blob_store`: parametrised over a local folder and S3 (moto's server on loopback).
- `team_factory`: `team_factory(role="admin")` makes an isolated team, user and API token,
  so that tests never share rows.
"""

from __future__ import annotations

import functools
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.blobs import BlobStore, LocalBlobStore, S3BlobStore, make_blob_store
from store.db import make_engine, make_session_factory, session_scope
from store.migrate import upgrade
from store.settings import Settings
from store.tokens import hash_password

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEST_PASSWORD = "correct horse battery staple"


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"distillery_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a migrated SQLite database file for this test session."""
    path = tmp_path_factory.mktemp("sqlite") / "distillery.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL; tests using it run once on SQLite and once on PostgreSQL."""
    fixture = "pg_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture
def engine(db_url: str, _engines: dict[str, Engine]) -> Engine:
    """The engine of `db_url`, shared by the tests of the session."""
    if db_url not in _engines:
        _engines[db_url] = make_engine(db_url)
    return _engines[db_url]


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory on `db_url` (objects stay readable after commit)."""
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session on `db_url`, closed after the test (commit what other sessions must see)."""
    with session_factory() as s:
        yield s


# --- blob stores -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of an S3 API server (moto) on a free loopback port, for the test session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_settings(endpoint: str, bucket: str, **overrides: Any) -> Settings:
    """Settings for an S3 blob store on the test server (moto takes any credentials)."""
    return Settings(
        blob_backend="s3",
        s3_endpoint_url=endpoint,
        s3_bucket=bucket,
        s3_region="us-east-1",
        s3_access_key="testing",
        s3_secret_key="testing",
        **overrides,
    )


@pytest.fixture
def s3_blob_store(s3_endpoint: str) -> S3BlobStore:
    """An S3 blob store on its own fresh bucket of the test server."""
    store = make_blob_store(s3_settings(s3_endpoint, f"t-{uuid.uuid4().hex[:16]}"))
    assert isinstance(store, S3BlobStore)
    return store


@pytest.fixture
def local_blob_store(tmp_path: Path) -> LocalBlobStore:
    """A local-folder blob store in the test's temporary folder."""
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest) -> BlobStore:
    """A blob store; tests using it run once on a local folder and once on S3."""
    store: BlobStore = request.getfixturevalue(f"{request.param}_blob_store")
    return store


# --- teams -----------------------------------------------------------------------------------


@dataclass
class Member:
    """A user of a test team with a password and a live API token."""

    user_id: int
    email: str
    password: str
    token: str
    role: str
    team_id: int

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate as this user in this team."""
        return {"Authorization": f"Bearer {self.token}", "X-Team-Id": str(self.team_id)}


@dataclass
class TeamContext:
    """An isolated team made for one test: its admin (or given role) and how to add others."""

    team_id: int
    name: str
    user_id: int
    email: str
    password: str
    token: str
    role: str
    session_factory: sessionmaker[Session] = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate as this team's first user in this team."""
        return {"Authorization": f"Bearer {self.token}", "X-Team-Id": str(self.team_id)}

    def add_member(self, role: str = "member") -> Member:
        """A new user in this team with `role`, a password and a token."""
        with session_scope(self.session_factory) as s:
            return _new_member(s, team_id=self.team_id, role=role)


@functools.cache
def _test_password_hash() -> str:
    # scrypt is slow on purpose; one hash (salted once) serves every test user.
    return hash_password(TEST_PASSWORD)


def _new_member(s: Session, *, team_id: int, role: str) -> Member:
    email = f"u-{uuid.uuid4().hex[:12]}@example.test"
    user = repo.create_user(s, email=email, name="Test User")
    user.password_hash = _test_password_hash()
    repo.add_member(s, team_id=team_id, user_id=user.id, role=role)
    token, _ = repo.create_token(s, user_id=user.id, name="test")
    return Member(
        user_id=user.id,
        email=email,
        password=TEST_PASSWORD,
        token=token,
        role=role,
        team_id=team_id,
    )


@pytest.fixture
def team_factory(session_factory: sessionmaker[Session]) -> Callable[..., TeamContext]:
    """`team_factory(role="admin")`: a new team with one user (that role) and an API token."""

    def make(role: str = "admin", name: str | None = None) -> TeamContext:
        team_name = name or f"team-{uuid.uuid4().hex[:12]}"
        with session_scope(session_factory) as s:
            team = repo.create_team(s, name=team_name)
            member = _new_member(s, team_id=team.id, role=role)
            team_id = team.id
        return TeamContext(
            team_id=team_id,
            name=team_name,
            user_id=member.user_id,
            email=member.email,
            password=member.password,
            token=member.token,
            role=role,
            session_factory=session_factory,
        )

    return make

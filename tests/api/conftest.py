"""Fixtures of the API tests: an app on a real database, broker and blob store per test.

SQLite runs pair with kombu's SQLAlchemy broker (the embedded deployment), PostgreSQL runs
with Redis (the team deployment); each test gets its own job queue name and data folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from store.db import is_sqlite
from store.settings import Settings
from tests.api.broker_probe import Broker
from tests.api.factories import MAX_UPLOAD_BYTES
from tests.platform_fixtures import TeamContext, s3_settings

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def broker(db_url: str, tmp_path: Path) -> Iterator[Broker]:
    """A real broker: SQLite's serverless transport beside SQLite, Redis beside PostgreSQL."""
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}" if is_sqlite(db_url) else REDIS_URL
    b = Broker(url=url, job_queue=f"gpu-test-{uuid.uuid4().hex[:8]}")
    yield b
    b.cleanup()


@pytest.fixture
def settings(db_url: str, broker: Broker, tmp_path: Path) -> Settings:
    """Settings of a test app: its own data folder, small upload limit, local blobs."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        broker_url=broker.url,
        job_queue=broker.job_queue,
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """A TestClient of a fresh app (lifespan run) on the test's settings."""
    app = create_app(settings)
    app.state.event_poll_seconds = 0.05
    with TestClient(app) as client:
        yield client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """Alias: the test app's client."""
    return app_client


@pytest.fixture
def blob_root(settings: Settings) -> Path:
    """The folder of the test app's local blob store."""
    return settings.resolved_blob_root


@pytest.fixture
def s3_app_client(
    db_url: str, broker: Broker, tmp_path: Path, s3_endpoint: str
) -> Iterator[TestClient]:
    """A TestClient of an app whose blob store is S3 (moto's server)."""
    settings = s3_settings(
        s3_endpoint,
        f"t-{uuid.uuid4().hex[:16]}",
        data_dir=tmp_path / "data",
        database_url=db_url,
        broker_url=broker.url,
        job_queue=broker.job_queue,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def team(team_factory: Callable[..., TeamContext]) -> TeamContext:
    """An isolated team whose first user is an admin."""
    return team_factory(role="admin")

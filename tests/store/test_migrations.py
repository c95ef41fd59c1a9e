"""The Alembic migrations build exactly the schema of store.models, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import main as alembic_main
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from store.migrate import current_revision, downgrade, head_revision, upgrade
from store.models import Base
from store.repositories.sweeps import platform_name

REPO = Path(__file__).resolve().parents[2]


def test_migrated_schema_matches_models(engine: Engine, db_url: str) -> None:
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_name": platform_name}  # not Optuna's tables
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert current_revision(db_url) == head_revision()


def test_upgrade_downgrade_round_trip_on_empty_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert current_revision(url) is None
    upgrade(url)
    from store.db import make_engine

    engine = make_engine(url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    downgrade(url, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_alembic_command_line_uses_environment_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DISTILLERY_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # alembic.ini finds its scripts from any directory
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        alembic_main(["-c", str(REPO / "alembic.ini"), "upgrade", "head"])
    finally:
        # alembic.ini configures logging for the command line; give pytest its own back.
        root.handlers[:] = handlers
        root.setLevel(level)
    assert current_revision(url) == head_revision()

"""Engines and sessions: SQLite pragmas, folder creation, commit and rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from store.db import make_engine, make_session_factory, session_scope
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

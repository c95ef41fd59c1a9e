"""`distillery admin`: bootstrap a team, users and tokens on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from cli.main import main
from store import repositories as repo
from store.migrate import head_revision


def _admin(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    status = main(["admin", "--database-url", url, *args])
    out, err = capsys.readouterr()
    return status, out.strip(), err


def test_bootstrap_creates_team_admin_and_token(
    db_url: str, session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    email, team_name = f"Admin-{suffix}@Example.test", f"vision-{suffix}"
    status, token, err = _admin(
        capsys, db_url, "bootstrap", email, "--team", team_name, "--password", "pw"
    )
    assert status == 0, err
    assert token.startswith("dst_") and "shown once" in err

    user = repo.user_for_token(session, token=token)
    assert user is not None and user.email == email.lower()
    team = repo.get_team_by_name(session, name=team_name)
    assert team is not None
    assert repo.role_in_team(session, team_id=team.id, user_id=user.id) == "admin"
    assert repo.authenticate(session, email=email, password="pw") is not None
    session.commit()  # user_for_token noted the use: release SQLite's write lock for the CLI

    # Bootstrapping again keeps the team and user and gives a second token.
    status, second, _ = _admin(capsys, db_url, "bootstrap", email, "--team", team_name)
    assert status == 0 and second != token
    assert len(repo.list_tokens(session, user_id=user.id)) == 2

    viewer = f"viewer-{suffix}@example.test"
    assert _admin(capsys, db_url, "create-user", viewer, "--name", "Vi")[0] == 0
    assert _admin(capsys, db_url, "add-member", team_name, viewer, "--role", "viewer")[0] == 0
    status, viewer_token, _ = _admin(capsys, db_url, "create-token", viewer)
    assert status == 0
    viewer_user = repo.user_for_token(session, token=viewer_token)
    assert viewer_user is not None and viewer_user.name == "Vi"
    assert repo.role_in_team(session, team_id=team.id, user_id=viewer_user.id) == "viewer"


def test_user_errors_exit_with_status_one(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    team_name = f"t-{uuid.uuid4().hex[:8]}"
    assert _admin(capsys, db_url, "create-team", team_name)[0] == 0
    status, _, err = _admin(capsys, db_url, "create-team", team_name)
    assert status == 1 and "already exists" in err
    status, _, err = _admin(capsys, db_url, "create-token", "nobody@example.test")
    assert status == 1 and "no user" in err
    status, _, err = _admin(capsys, db_url, "add-member", "no-such-team", "x@example.test")
    assert status == 1 and "no team" in err


def test_init_migrates_the_embedded_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISTILLERY_DATABASE_URL", raising=False)
    monkeypatch.setenv("DISTILLERY_DATA_DIR", str(tmp_path / "data"))
    assert main(["admin", "init"]) == 0
    out = capsys.readouterr().out
    assert f"revision {head_revision()}" in out  # the head of alembic/versions
    assert (tmp_path / "data" / "distillery.db").is_file()

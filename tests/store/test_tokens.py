"""API tokens are stored only as hashes and resolve to their user; passwords use scrypt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from store.models import ApiToken, utcnow
from store.tokens import hash_password, hash_token, verify_password
from tests.platform_fixtures import TeamContext


def test_token_is_stored_hashed_and_resolves(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    assert team.token.startswith("dst_")
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == team.user_id)).all()
    assert len(rows) == 1
    stored = [str(v) for v in vars(rows[0]).values()]
    assert team.token not in stored
    assert rows[0].token_hash == hash_token(team.token)
    assert team.token.startswith(rows[0].prefix)

    user = repo.user_for_token(session, token=team.token)
    assert user is not None and user.id == team.user_id
    assert rows[0].last_used_at is not None
    assert repo.user_for_token(session, token=team.token + "x") is None
    assert repo.user_for_token(session, token="") is None


def test_revoked_token_and_inactive_user_are_refused(
    team_factory: Callable[..., TeamContext], session_factory: sessionmaker[Session]
) -> None:
    team = team_factory()
    other = team.add_member("viewer")
    with session_scope(session_factory) as s:
        (row,) = repo.list_tokens(s, user_id=team.user_id)
        assert repo.revoke_token(s, user_id=other.user_id, token_id=row.id) is False
        assert repo.revoke_token(s, user_id=team.user_id, token_id=row.id) is True
    with session_scope(session_factory) as s:
        assert repo.user_for_token(s, token=team.token) is None
        user = repo.get_user(s, user_id=other.user_id)
        assert user is not None
        user.is_active = False
    with session_scope(session_factory) as s:
        assert repo.user_for_token(s, token=other.token) is None
        assert repo.authenticate(s, email=other.email, password=other.password) is None


def test_last_used_at_is_written_at_most_once_a_minute(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    start = utcnow()
    repo.user_for_token(session, token=team.token, now=start)
    repo.user_for_token(session, token=team.token, now=start + timedelta(seconds=5))
    session.commit()
    (row,) = repo.list_tokens(session, user_id=team.user_id)
    session.refresh(row)
    # Read back from the database: timezone-aware UTC on SQLite too, the first use only.
    assert row.last_used_at == start
    assert row.last_used_at.tzinfo is not None
    later = start + timedelta(minutes=5)
    repo.user_for_token(session, token=team.token, now=later)
    assert row.last_used_at == later


def test_authenticate_by_email_and_password(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    user = repo.authenticate(session, email=team.email.upper(), password=team.password)
    assert user is not None and user.id == team.user_id
    assert repo.authenticate(session, email=team.email, password="wrong") is None
    assert repo.authenticate(session, email="nobody@example.test", password="x") is None


def test_password_hash_is_salted_scrypt() -> None:
    first, second = hash_password("secret"), hash_password("secret")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("secret", first) and verify_password("secret", second)
    assert not verify_password("Secret", first)
    assert not verify_password("secret", None)
    assert not verify_password("secret", "garbage")


def test_memberships_and_roles(team_factory: Callable[..., TeamContext], session: Session) -> None:
    team = team_factory()
    viewer = team.add_member("viewer")
    assert repo.role_in_team(session, team_id=team.team_id, user_id=team.user_id) == "admin"
    assert repo.role_in_team(session, team_id=team.team_id, user_id=viewer.user_id) == "viewer"
    other = team_factory()
    assert repo.role_in_team(session, team_id=other.team_id, user_id=viewer.user_id) is None
    repo.add_member(session, team_id=other.team_id, user_id=viewer.user_id, role="member")
    teams = repo.teams_of_user(session, user_id=viewer.user_id)
    assert [(t.id, role) for t, role in teams] == [
        (team.team_id, "viewer"),
        (other.team_id, "member"),
    ]

"""What a token grants, in one query: its user and a membership; its use noted once a minute."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from store import repositories as repo
from store.models import ApiToken, utcnow
from tests.platform_fixtures import TeamContext


def test_token_user_and_membership_come_in_one_query(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    first, second, stranger = team_factory(), team_factory(), team_factory()
    member = first.add_member("viewer")
    repo.add_member(session, team_id=second.team_id, user_id=member.user_id, role="admin")
    session.commit()
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", count)
    try:
        default = repo.token_access(session, token=member.token, team=True)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert len(statements) == 1
    assert default is not None and default.user.id == member.user_id
    assert (default.team_id, default.team_name, default.role) == (
        first.team_id,
        first.name,
        "viewer",
    )

    chosen = repo.token_access(session, token=member.token, team=True, team_id=second.team_id)
    assert chosen is not None and (chosen.team_id, chosen.role) == (second.team_id, "admin")
    outside = repo.token_access(session, token=member.token, team=True, team_id=stranger.team_id)
    assert outside is not None and (outside.team_id, outside.role) == (None, None)
    plain = repo.token_access(session, token=member.token)
    assert plain is not None and plain.team_id is None and plain.user.email == member.email
    assert repo.token_access(session, token=member.token + "x", team=True) is None

    repo.remove_member(session, team_id=first.team_id, user_id=first.user_id)
    lonely = repo.token_access(session, token=first.token, team=True)
    assert lonely is not None and lonely.team_id is None


def test_token_use_is_noted_when_due_only(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    access = repo.token_access(session, token=team.token)
    assert access is not None and access.last_used_at is None
    now = utcnow()
    assert repo.note_token_use(session, access=access, now=now) is True
    session.commit()
    access = repo.token_access(session, token=team.token)
    assert access is not None and access.last_used_at == now
    assert repo.note_token_use(session, access=access, now=now + timedelta(seconds=30)) is False
    later = now + timedelta(minutes=2)
    assert repo.note_token_use(session, access=access, now=later) is True
    session.commit()
    stored = session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == access.token_id))
    assert stored == later
    # A stale read does not write over a newer use (another process noted it meanwhile).
    assert repo.note_token_use(session, access=access, now=now + timedelta(minutes=1, seconds=30))
    session.commit()
    stored = session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == access.token_id))
    assert stored == later

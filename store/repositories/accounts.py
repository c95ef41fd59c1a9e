"""Users, teams, memberships and API tokens."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from store.models import (
    ROLES,
    ApiToken,
    Membership,
    Team,
    User,
    utcnow,
)
from store.repositories.common import AlreadyExists
from store.tokens import generate_token, hash_password, hash_token, token_prefix, verify_password

TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)


def _normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session, *, email: str, name: str = "", password: str | None = None
) -> User:
    """A new user; the password (if any) is stored as a scrypt hash."""
    email = _normalise_email(email)
    if "@" not in email:
        raise ValueError(f"email: {email!r} is not an e-mail address")
    if get_user_by_email(session, email=email) is not None:
        raise AlreadyExists(f"email: a user {email} already exists")
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password) if password else None,
        is_active=True,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, user_id: int, password: str) -> None:
    """Replace a user's password."""
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(f"user {user_id} not found")
    user.password_hash = hash_password(password)
    session.flush()


def get_user(session: Session, *, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def user_emails(session: Session, *, user_ids: Iterable[int]) -> dict[int, str]:
    """User id -> e-mail for these users (one query; unknown ids are left out)."""
    ids = set(user_ids)
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(ids)))
    return {user_id: email for user_id, email in rows}


def get_user_by_email(session: Session, *, email: str) -> User | None:
    """The user with this e-mail address (case-insensitive), or None."""
    return session.scalars(select(User).where(User.email == _normalise_email(email))).first()


def authenticate(session: Session, *, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    user = get_user_by_email(session, email=email)
    if user is None or not user.is_active or not verify_password(password, user.password_hash):
        return None
    return user


def create_team(session: Session, *, name: str) -> Team:
    """A new team with a unique name."""
    name = name.strip()
    if not name:
        raise ValueError("name: a team needs a name")
    if get_team_by_name(session, name=name) is not None:
        raise AlreadyExists(f"name: a team {name!r} already exists")
    team = Team(name=name)
    session.add(team)
    session.flush()
    return team


def get_team(session: Session, *, team_id: int) -> Team | None:
    """The team with this id, or None."""
    return session.get(Team, team_id)


def get_team_by_name(session: Session, *, name: str) -> Team | None:
    """The team with this name, or None."""
    return session.scalars(select(Team).where(Team.name == name.strip())).first()


def add_member(session: Session, *, team_id: int, user_id: int, role: str = "member") -> Membership:
    """Make a user a member of a team with `role`, or change the role of a member."""
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    membership = session.scalars(
        select(Membership).where(Membership.team_id == team_id, Membership.user_id == user_id)
    ).first()
    if membership is None:
        membership = Membership(team_id=team_id, user_id=user_id, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


def remove_member(session: Session, *, team_id: int, user_id: int) -> bool:
    """Remove a user from a team; False when they were not a member."""
    membership = session.scalars(
        select(Membership).where(Membership.team_id == team_id, Membership.user_id == user_id)
    ).first()
    if membership is None:
        return False
    session.delete(membership)
    session.flush()
    return True


def role_in_team(session: Session, *, team_id: int, user_id: int) -> str | None:
    """The user's role in the team, or None when they are not a member."""
    return session.scalars(
        select(Membership.role).where(Membership.team_id == team_id, Membership.user_id == user_id)
    ).first()


def teams_of_user(session: Session, *, user_id: int) -> list[tuple[Team, str]]:
    """The user's teams with their role in each, oldest membership first."""
    rows = session.execute(
        select(Team, Membership.role)
        .join(Membership, Membership.team_id == Team.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.id)
    ).all()
    return [(team, role) for team, role in rows]


def create_token(session: Session, *, user_id: int, name: str = "") -> tuple[str, ApiToken]:
    """A new API token: the plaintext (show it once) and its row (which keeps only a hash)."""
    token = generate_token()
    row = ApiToken(
        user_id=user_id, name=name, token_hash=hash_token(token), prefix=token_prefix(token)
    )
    session.add(row)
    session.flush()
    return token, row


def user_for_token(session: Session, *, token: str, now: datetime | None = None) -> User | None:
    """The active user a live token belongs to (noting when it was used), or None.

    Noting the use is an UPDATE in the caller's transaction: commit soon, since SQLite holds
    its write lock until then.
    """
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        session.flush()
    return user


@dataclass(frozen=True)
class TokenAccess:
    """What a live token grants: its active user, and one team membership when asked for.

    `team_id`, `team_name` and `role` are None when the user is in no team (or not in the
    team asked for). `token_id` and `last_used_at` serve `note_token_use`.
    """

    user: User
    token_id: int
    last_used_at: datetime | None
    team_id: int | None = None
    team_name: str | None = None
    role: str | None = None


@functools.lru_cache(maxsize=4)
def _access_statement(*, team: bool, team_id: bool) -> Select:  # type: ignore[type-arg]  # Select[...] differs in SQLAlchemy 2.0 and 2.1
    """The token-access query of one shape, built once (the values are parameters)."""
    columns = (User, ApiToken.id, ApiToken.last_used_at)
    live = (
        ApiToken.token_hash == bindparam("token_hash"),
        ApiToken.revoked_at.is_(None),
        User.is_active.is_(True),
    )
    if not team:
        return select(*columns).join(ApiToken, ApiToken.user_id == User.id).where(*live).limit(1)
    member_of = [Membership.user_id == User.id]
    if team_id:
        member_of.append(Membership.team_id == bindparam("team_id"))
    return (
        select(*columns, Team.id, Team.name, Membership.role)
        .join(ApiToken, ApiToken.user_id == User.id)
        .outerjoin(Membership, and_(*member_of))
        .outerjoin(Team, Team.id == Membership.team_id)
        .where(*live)
        .order_by(Membership.id)
        .limit(1)
    )


def token_access(
    session: Session, *, token: str, team: bool = False, team_id: int | None = None
) -> TokenAccess | None:
    """The live token's active user and (with `team`) a membership, in ONE query; or None.

    With `team`: the membership in `team_id`, or the user's first team (oldest membership)
    when `team_id` is None. Writes nothing: `note_token_use` notes the use when it is due.
    """
    statement = _access_statement(team=team, team_id=team and team_id is not None)
    params: dict[str, Any] = {"token_hash": hash_token(token)}
    if team and team_id is not None:
        params["team_id"] = team_id
    found = session.execute(statement, params).first()
    if found is None:
        return None
    if not team:
        return TokenAccess(user=found[0], token_id=found[1], last_used_at=found[2])
    user, token_id, last_used_at, found_team_id, team_name, role = found
    return TokenAccess(
        user=user,
        token_id=token_id,
        last_used_at=last_used_at,
        team_id=found_team_id,
        team_name=team_name,
        role=role if found_team_id is not None else None,
    )


def note_token_use(session: Session, *, access: TokenAccess, now: datetime | None = None) -> bool:
    """Note the token's use when its last noted use is older than `TOKEN_TOUCH_INTERVAL`.

    No statement at all while the last use is recent, so most requests write nothing; the
    UPDATE is conditional, so processes noting the same use at once write it once. True when
    an UPDATE was sent: the caller commits (on an autocommit session it committed itself).
    """
    now = now or utcnow()
    if access.last_used_at is not None and now - access.last_used_at <= TOKEN_TOUCH_INTERVAL:
        return False
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == access.token_id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at < now - TOKEN_TOUCH_INTERVAL,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


def list_tokens(session: Session, *, user_id: int) -> list[ApiToken]:
    """A user's tokens (hashes and prefixes only), newest first."""
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(session: Session, *, user_id: int, token_id: int) -> bool:
    """Revoke one of the user's tokens; False when the user has no such token."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:
        return False
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return True

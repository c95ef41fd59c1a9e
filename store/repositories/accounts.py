"""Users, teams, memberships and API tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
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

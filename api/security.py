"""Bearer-token authentication: the token's hash is looked up in the store.

One query per request: the token, its user and (for team routes) the membership come back
together (`repo.token_access`); the token's last use is written at most once a minute.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from store import repositories as repo
from store.db import Session, retry_if_disconnected
from store.models import User

# auto_error=False: a missing token gets our JSON 401 (with WWW-Authenticate), not a 403.
bearer_scheme = HTTPBearer(auto_error=False, description="An API token from POST /auth/login")


def unauthorized(message: str) -> HTTPException:
    """401 with the Bearer challenge."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def request_token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The token of a request, from its Authorization header only.

    Never from the URL: URLs end up in access logs, browser history and Referer headers. A
    browser that must put a credential in a URL asks for a short-lived ticket (api.tickets).
    """
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials or None
    return None


def access_for_request(
    session: Session,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    team: bool = False,
    team_id: int | None = None,
) -> repo.TokenAccess:
    """What the request's token grants (with `team`: also a membership), or a 401.

    The first statement of the request, so it runs again once if the pooled connection was
    dead. Noting the token's use costs a statement (and a commit) only when it is due.
    """
    token = request_token(credentials)
    if not token:
        raise unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
    access = retry_if_disconnected(
        session, lambda s: repo.token_access(s, token=token, team=team, team_id=team_id)
    )
    if access is None:
        raise unauthorized("invalid or revoked token")
    if repo.note_token_use(session, access=access):
        # Kept even when the request fails later; SQLite holds its write lock until the commit.
        session.commit()
    return access


def authenticate_request(
    session: Session, credentials: HTTPAuthorizationCredentials | None
) -> User:
    """The active user the request's token belongs to, or a 401."""
    return access_for_request(session, credentials).user

"""Bearer-token authentication: the token's hash is looked up in the store."""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from store import repositories as repo
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


def authenticate_request(
    session: Session, credentials: HTTPAuthorizationCredentials | None
) -> User:
    """The active user the request's token belongs to, or a 401."""
    token = request_token(credentials)
    if not token:
        raise unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
    user = repo.user_for_token(session, token=token)
    if user is None:
        raise unauthorized("invalid or revoked token")
    # user_for_token may have noted the token's last use; keep that even on read-only requests.
    session.commit()
    return user

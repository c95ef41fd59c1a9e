"""Bearer-token authentication: the token's hash is looked up in the store."""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from store import repositories as repo
from store.models import User

# auto_error=False: a missing token gets our JSON 401 (with WWW-Authenticate), not a 403.
bearer_scheme = HTTPBearer(auto_error=False, description="An API token from POST /auth/login")

QUERY_TOKEN_PARAM = "access_token"
"""Query parameter that may carry the token on GET requests: EventSource and download links
cannot set an Authorization header."""


def unauthorized(message: str) -> HTTPException:
    """401 with the Bearer challenge."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def request_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> str | None:
    """The token of a request: the Authorization header, else `?access_token=` on a GET."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return credentials.credentials
    if request.method == "GET":
        return request.query_params.get(QUERY_TOKEN_PARAM) or None
    return None


def authenticate_request(
    request: Request, session: Session, credentials: HTTPAuthorizationCredentials | None
) -> User:
    """The active user the request's token belongs to, or a 401."""
    token = request_token(request, credentials)
    if not token:
        raise unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
    user = repo.user_for_token(session, token=token)
    if user is None:
        raise unauthorized("invalid or revoked token")
    # user_for_token may have noted the token's last use; keep that even on read-only requests.
    session.commit()
    return user

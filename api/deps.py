"""Typed dependencies of the routes: session, settings, blobs, queue, user and team context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from api.errors import FieldError
from api.queue import TaskQueue
from api.security import authenticate_request, bearer_scheme
from store import repositories as repo
from store.blobs import BlobStore
from store.models import User
from store.settings import Settings

ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2}
"""Viewers read, members also write, admins may also act on other people's rows."""


def get_session(request: Request) -> Iterator[Session]:
    """A database session for one request (handlers commit what they change)."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_blobs(request: Request) -> BlobStore:
    """The app's blob store (a local folder or S3)."""
    blobs: BlobStore = request.app.state.blobs
    return blobs


def get_queue(request: Request) -> TaskQueue:
    """The app's task sender."""
    queue: TaskQueue = request.app.state.queue
    return queue


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
QueueDep = Annotated[TaskQueue, Depends(get_queue)]


def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    """The signed-in user (401 without a valid token)."""
    return authenticate_request(request, session, credentials)


CurrentUser = Annotated[User, Depends(get_current_user)]


@dataclass(frozen=True)
class TeamContext:
    """The team a request acts in, the user acting and the user's role there."""

    id: int
    name: str
    role: str
    user: User

    def allows(self, role: str) -> bool:
        """Whether the user's role is at least `role`."""
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]

    def require(self, role: str) -> None:
        """403 unless the user's role is at least `role`."""
        if not self.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"your role in team {self.name!r} is {self.role}; this needs {role}",
            )

    def require_owner_or_admin(self, created_by: int | None, what: str) -> None:
        """403 unless the user created the row (as a member) or is an admin of the team."""
        self.require("member")
        if created_by != self.user.id and not self.allows("admin"):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"only its creator or a team admin may delete this {what}",
            )


def get_team_context(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    x_team_id: Annotated[
        str | None,
        Header(description="Team to act in (default: the user's first team)"),
    ] = None,
) -> TeamContext:
    """The team of the request: `X-Team-Id` (or `?team_id=` on GETs), else the first team."""
    raw = x_team_id
    loc: list[str | int] = ["header", "X-Team-Id"]
    if raw is None and request.method == "GET" and "team_id" in request.query_params:
        raw, loc = request.query_params["team_id"], ["query", "team_id"]
    teams = repo.teams_of_user(session, user_id=user.id)
    if raw is None:
        if not teams:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you belong to no team")
        team, role = teams[0]
        return TeamContext(id=team.id, name=team.name, role=role, user=user)
    try:
        team_id = int(raw)
    except ValueError:
        raise FieldError(422, loc, f"{raw!r} is not a team id") from None
    for team, role in teams:
        if team.id == team_id:
            return TeamContext(id=team.id, name=team.name, role=role, user=user)
    raise FieldError(status.HTTP_403_FORBIDDEN, loc, f"you are not a member of team {team_id}")


def require_member(team: Annotated[TeamContext, Depends(get_team_context)]) -> TeamContext:
    """The team context, 403 for viewers: the request writes."""
    team.require("member")
    return team


CurrentTeam = Annotated[TeamContext, Depends(get_team_context)]
"""Any member of the team, viewers included: for reads."""

WriterTeam = Annotated[TeamContext, Depends(require_member)]
"""Members and admins: for requests that create or change rows."""


@dataclass(frozen=True)
class Page:
    """Pagination of a list: at most `limit` rows after skipping `offset`."""

    limit: int
    offset: int


def get_page(
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, description="rows to skip")] = 0,
) -> Page:
    """The `?limit=&offset=` of a list request."""
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(get_page)]

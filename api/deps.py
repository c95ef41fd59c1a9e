"""Typed dependencies of the routes: session, settings, blobs, queue, user and team context.

Those that do no I/O are `async def`: FastAPI runs them on the event loop, not in its thread
pool (a thread hop each, two for a generator); those that query the database stay
synchronous. The session is one of the former: making it touches no connection, and closing
it hands its connection, if it took one, back to the pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import Message
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Query, Request, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from api.bounds import MAX_ID, MAX_OFFSET, NUL, bad_json_values, nul_message, parse_row_id
from api.errors import FieldError, FieldErrors
from api.queue import TaskQueue
from api.security import (
    access_for_request,
    authenticate_request,
    bearer_scheme,
    request_token,
    unauthorized,
)
from store.blobs import BlobStore
from store.db import Session
from store.models import User
from store.settings import Settings

ROLE_RANK = {"viewer": 0, "member": 1, "admin": 2}
"""Viewers read, members also write, admins may also act on other people's rows."""


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Requests with these methods change nothing (but the throttled token last-use)."""


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A database session for one request (handlers commit what they change).

    Read-only requests get a session without transaction round trips (no BEGIN, ROLLBACK or
    COMMIT on PostgreSQL; `store.db.make_read_session_factory`).
    """
    state = request.app.state
    read_only = request.method in READ_ONLY_METHODS
    session: Session = (state.read_session_factory if read_only else state.session_factory)()
    try:
        yield session
    finally:
        session.close()


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_blobs(request: Request) -> BlobStore:
    """The app's blob store (a local folder or S3)."""
    blobs: BlobStore = request.app.state.blobs
    return blobs


async def get_queue(request: Request) -> TaskQueue:
    """The app's task sender."""
    queue: TaskQueue = request.app.state.queue
    return queue


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
QueueDep = Annotated[TaskQueue, Depends(get_queue)]


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def get_current_user(session: SessionDep, credentials: BearerCredentials) -> User:
    """The signed-in user (401 without a valid `Authorization: Bearer` token)."""
    return authenticate_request(session, credentials)


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


TeamHeader = Annotated[
    str | None, Header(description="Team to act in (default: the user's first team)")
]


def team_for_request(
    session: Session, credentials: HTTPAuthorizationCredentials | None, x_team_id: str | None
) -> TeamContext:
    """The team `X-Team-Id` names (403 if the user is not in it), else the user's first team.

    One query: token, user and membership together. A 401 comes before any header error.
    """
    loc: list[str | int] = ["header", "X-Team-Id"]
    team_id: int | None = None
    if x_team_id is not None:
        team_id = parse_row_id(x_team_id)
        if team_id is None:
            authenticate_request(session, credentials)
            raise FieldError(
                422, loc, f"{x_team_id!r} is not a team id (an integer from 1 to {MAX_ID})"
            )
    access = access_for_request(session, credentials, team=True, team_id=team_id)
    if access.team_id is None or access.team_name is None or access.role is None:
        if team_id is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you belong to no team")
        raise FieldError(status.HTTP_403_FORBIDDEN, loc, f"you are not a member of team {team_id}")
    return TeamContext(id=access.team_id, name=access.team_name, role=access.role, user=access.user)


def get_team_context(
    session: SessionDep, credentials: BearerCredentials, x_team_id: TeamHeader = None
) -> TeamContext:
    """The team of the request: `X-Team-Id`, else the user's first team."""
    return team_for_request(session, credentials, x_team_id)


async def require_member(team: Annotated[TeamContext, Depends(get_team_context)]) -> TeamContext:
    """The team context, 403 for viewers: the request writes."""
    team.require("member")
    return team


CurrentTeam = Annotated[TeamContext, Depends(get_team_context)]
"""Any member of the team, viewers included: for reads."""


@dataclass(frozen=True)
class TeamCredentials:
    """A request's token and `X-Team-Id`, checked against the database by the endpoint itself.

    For the hottest read (the job list): `CurrentTeam` is a synchronous dependency, so FastAPI
    runs it in a thread of its pool and then the synchronous endpoint in another; with this
    one the team is looked up in the endpoint's own thread, one hop per request instead of
    two. A request without a token is refused here, before its query is validated; one
    whose token is unknown, in `team`.
    """

    credentials: HTTPAuthorizationCredentials | None
    x_team_id: str | None

    def team(self, session: Session) -> TeamContext:
        """The team of the request, as `CurrentTeam` gives it (the same 401, 403 and 422)."""
        return team_for_request(session, self.credentials, self.x_team_id)


async def get_team_credentials(
    credentials: BearerCredentials, x_team_id: TeamHeader = None
) -> TeamCredentials:
    """The request's credentials, a 401 when there is no token (no database work here)."""
    if not request_token(credentials):
        raise unauthorized("not authenticated: send 'Authorization: Bearer <token>'")
    return TeamCredentials(credentials, x_team_id)


TeamInEndpoint = Annotated[TeamCredentials, Depends(get_team_credentials)]
"""Any member of the team, looked up by the (synchronous) endpoint: `.team(session)` first."""

WriterTeam = Annotated[TeamContext, Depends(require_member)]
"""Members and admins: for requests that create or change rows."""


@dataclass(frozen=True)
class Page:
    """Pagination of a list: at most `limit` rows after skipping `offset`."""

    limit: int
    offset: int


async def get_page(
    limit: Annotated[int, Query(ge=1, le=500, description="rows per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")] = 0,
) -> Page:
    """The `?limit=&offset=` of a list request."""
    return Page(limit=limit, offset=offset)


PageDep = Annotated[Page, Depends(get_page)]


RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]
"""A path id (`{job_id}`, `{dataset_id}`, `{teacher_id}`): within the database's int4 range."""

OptionalRowId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
"""A query parameter naming a row by id, within the database's int4 range."""


def _is_json(content_type: str | None) -> bool:
    # The media types FastAPI parses as JSON (also a body without a content type).
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def refuse_bad_input(request: Request) -> None:
    """422 naming each path, query or JSON body field with a NUL byte (or a NaN in JSON).

    PostgreSQL's text cannot hold NUL; checking every request here covers every field of
    every route, present and future. Multipart form fields are checked as they stream in
    (api.uploads).
    """
    errors: list[dict[str, Any]] = []

    def refuse(loc: tuple[str | int, ...], msg: str) -> None:
        errors.append({"loc": list(loc), "msg": msg, "type": "value_error"})

    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            refuse(("path", name), nul_message())
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            refuse(("query", name), nul_message())
    # Only where the route takes a JSON body: FastAPI has read and parsed it already (cached),
    # so no other body is ever read into memory here.
    route = request.scope.get("route")
    takes_body = isinstance(route, APIRoute) and route.body_field is not None
    if takes_body and _is_json(request.headers.get("content-type")) and await request.body():
        try:
            parsed = await request.json()
        except (ValueError, RecursionError):
            parsed = None  # FastAPI answers malformed JSON itself
        for loc, msg in bad_json_values(parsed, ("body",)):
            refuse(loc, msg)
    if errors:
        raise FieldErrors(errors)

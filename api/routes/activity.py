"""Team history: recent activity by user, and the team's members (for filters by user)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.bounds import parse_row_id
from api.deps import CurrentTeam, SessionDep
from api.errors import FieldError
from store import repositories as repo

router = APIRouter(tags=["activity"])


class ActivityPublic(BaseModel):
    """One thing a user did: `action` is one of submitted, canceled, uploaded_dataset,
    uploaded_teacher, started_sweep; `subject` (job, dataset, teacher, sweep) names the row."""

    at: datetime
    action: str
    user_id: int | None
    user_email: str | None
    subject: str
    subject_id: int
    subject_name: str


class ActivitiesPublic(BaseModel):
    """The team's recent activity, newest first."""

    data: list[ActivityPublic]
    count: int


class MemberPublic(BaseModel):
    """A member of the team."""

    id: int
    email: str
    name: str
    role: str


class MembersPublic(BaseModel):
    """The team's members, by e-mail."""

    data: list[MemberPublic]
    count: int


def parse_user(raw: str | None, team: CurrentTeam, field: str) -> int | None:
    """`me` or a user id as an id; None for no filter; 422 naming `field` otherwise."""
    if raw is None or raw == "":
        return None
    if raw == "me":
        return team.user.id
    user_id = parse_row_id(raw)
    if user_id is None:
        raise FieldError(422, ["query", field], f"{raw!r} is not a user id or 'me'")
    return user_id


@router.get("/activity", response_model=ActivitiesPublic)
def team_activity(
    team: CurrentTeam,
    session: SessionDep,
    user: Annotated[str | None, Query(description="a user id, or 'me'")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="entries to return")] = 50,
) -> ActivitiesPublic:
    """Who submitted, canceled or uploaded what in this team, and when (newest first)."""
    user_id = parse_user(user, team, "user")
    entries = repo.team_activity(session, team_id=team.id, user_id=user_id, limit=limit)
    emails = repo.user_emails(
        session, user_ids=[e.user_id for e in entries if e.user_id is not None]
    )
    data = [
        ActivityPublic(
            at=e.at,
            action=e.action,
            user_id=e.user_id,
            user_email=emails.get(e.user_id) if e.user_id is not None else None,
            subject=e.subject,
            subject_id=e.subject_id,
            subject_name=e.subject_name,
        )
        for e in entries
    ]
    return ActivitiesPublic(data=data, count=len(data))


@router.get("/members", response_model=MembersPublic)
def team_members(team: CurrentTeam, session: SessionDep) -> MembersPublic:
    """The members of the team the request acts in."""
    members = repo.team_members(session, team_id=team.id)
    data = [MemberPublic(id=m.user_id, email=m.email, name=m.name, role=m.role) for m in members]
    return MembersPublic(data=data, count=len(data))

"""Signing in (email + password -> API token) and who am I."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CurrentUser, SessionDep
from api.schemas import LoginRequest, MePublic, TeamRole, TokenPublic
from api.security import unauthorized
from store import repositories as repo

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/login",
    response_model=TokenPublic,
    status_code=status.HTTP_200_OK,
    responses={401: {"description": "wrong e-mail or password"}},
)
def login(body: LoginRequest, session: SessionDep) -> TokenPublic:
    """Exchange an e-mail and password for a new API token."""
    user = repo.authenticate(session, email=body.email, password=body.password)
    if user is None:
        raise unauthorized("wrong e-mail or password")
    token, _row = repo.create_token(session, user_id=user.id, name="login")
    session.commit()
    return TokenPublic(token=token)


@router.get("/me", response_model=MePublic)
def me(user: CurrentUser, session: SessionDep) -> MePublic:
    """The signed-in user and their teams with roles."""
    teams = repo.teams_of_user(session, user_id=user.id)
    return MePublic(
        id=user.id,
        email=user.email,
        name=user.name,
        teams=[TeamRole(id=team.id, name=team.name, role=role) for team, role in teams],
    )

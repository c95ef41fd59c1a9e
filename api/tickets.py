"""Short-lived signed tickets: a URL credential that opens one object of one job, nothing else.

A browser cannot put the Authorization header on every request it makes (a link followed to
a presigned S3 URL, an EventSource), and an API token in a URL ends up in access logs and
browser history. A ticket is the URL credential instead: HMAC-signed with the settings'
secret key, it binds a purpose ("events", "download"), the job (and artifact name), the user,
the team and an expiry a minute away.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Query

from api.deps import BearerCredentials, TeamContext, team_for_request
from api.schemas import TicketPublic
from api.security import unauthorized
from store import repositories as repo
from store.db import Session
from store.settings import Settings

TICKET_SECONDS = 60
"""How long a ticket opens its object (a stream, once open, may run longer)."""

MAX_TICKET_CHARS = 2000

Purpose = Literal["events", "download"]

_VERSION = "t1"
_KEY_LABEL = b"distillery url ticket"

TicketQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_TICKET_CHARS,
        description="a ticket from the matching `POST .../ticket` (instead of the header)",
    ),
]


@dataclass(frozen=True)
class Ticket:
    """What a ticket grants: `purpose` on job `job_id` (artifact `name`) as a user in a team."""

    purpose: str
    job_id: int
    user_id: int
    team_id: int
    expires_at: int
    name: str | None = None


class TicketError(Exception):
    """A ticket that is malformed, forged or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, message: str) -> bytes:
    # A key of its own, derived from the secret: a ticket signature is never valid elsewhere.
    key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).digest()


def sign_ticket(ticket: Ticket, secret: str) -> str:
    """`ticket` as `t1.<payload>.<signature>` (URL-safe base64)."""
    fields = [
        ticket.purpose,
        ticket.job_id,
        ticket.user_id,
        ticket.team_id,
        ticket.expires_at,
        ticket.name,
    ]
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    message = f"{_VERSION}.{payload}"
    return f"{message}.{_b64(_signature(secret, message))}"


def read_ticket(raw: str, secret: str, *, now: float | None = None) -> Ticket:
    """The ticket `raw` carries if its signature is ours and it has not expired."""
    parts = raw.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise TicketError("malformed ticket")
    message = f"{parts[0]}.{parts[1]}"
    try:
        given = _unb64(parts[2])
        expected = _signature(secret, message)
    except (binascii.Error, ValueError):
        raise TicketError("malformed ticket") from None
    if not hmac.compare_digest(given, expected):
        raise TicketError("invalid ticket")
    try:
        purpose, job_id, user_id, team_id, expires_at, name = json.loads(_unb64(parts[1]))
        ticket = Ticket(
            str(purpose), int(job_id), int(user_id), int(team_id), int(expires_at), name
        )
    except (binascii.Error, ValueError, TypeError):
        raise TicketError("malformed ticket") from None
    if (time.time() if now is None else now) >= ticket.expires_at:
        raise TicketError("expired ticket")
    return ticket


def issue_ticket(
    settings: Settings, team: TeamContext, *, purpose: Purpose, job_id: int, name: str | None = None
) -> TicketPublic:
    """A ticket for `purpose` on the team's job `job_id` (the caller checked the job is theirs)."""
    ticket = Ticket(
        purpose=purpose,
        job_id=job_id,
        user_id=team.user.id,
        team_id=team.id,
        expires_at=int(time.time()) + TICKET_SECONDS,
        name=name,
    )
    return TicketPublic(
        ticket=sign_ticket(ticket, settings.resolved_secret_key), expires_in=TICKET_SECONDS
    )


def team_for_ticket(
    session: Session,
    settings: Settings,
    raw: str,
    *,
    purpose: Purpose,
    job_id: int,
    name: str | None = None,
) -> TeamContext:
    """The team context a ticket grants for this very object, or a 401."""
    try:
        ticket = read_ticket(raw, settings.resolved_secret_key)
    except TicketError as exc:
        raise unauthorized(f"{exc}; ask for a new one") from None
    if (ticket.purpose, ticket.job_id, ticket.name) != (purpose, job_id, name):
        raise unauthorized("this ticket is for another object")
    user = repo.get_user(session, user_id=ticket.user_id)
    role = repo.role_in_team(session, team_id=ticket.team_id, user_id=ticket.user_id)
    team = repo.get_team(session, team_id=ticket.team_id)
    if user is None or not user.is_active or role is None or team is None:
        raise unauthorized("the ticket's user can no longer act in its team")
    return TeamContext(id=team.id, name=team.name, role=role, user=user)


def ticket_or_header_team(
    session: Session,
    settings: Settings,
    credentials: BearerCredentials,
    x_team_id: str | None,
    ticket: str | None,
    *,
    purpose: Purpose,
    job_id: int,
    name: str | None = None,
) -> TeamContext:
    """The team of a request that carries either a ticket for this object or the header."""
    if ticket is not None:
        return team_for_ticket(session, settings, ticket, purpose=purpose, job_id=job_id, name=name)
    return team_for_request(session, credentials, x_team_id)

"""Commands of the `admin` group: migrate the database, create teams, users and API tokens."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store.db import Session
    from store.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this group's commands on the top-level parser."""
    parser = sub.add_parser(
        "admin",
        help="administer the platform's database: migrations, teams, users, tokens",
        description="Administer the platform's database (DISTILLERY_DATABASE_URL, or the "
        "embedded SQLite file in DISTILLERY_DATA_DIR).",
    )
    parser.add_argument(
        "--database-url", help="database URL (default: from the settings / environment)"
    )
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
    commands = parser.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND")

    init = commands.add_parser("init", help="create or migrate the database schema")
    init.set_defaults(handler=_handler(_init))

    user = commands.add_parser("create-user", help="create a user")
    user.add_argument("email")
    user.add_argument("--name", default="")
    user.add_argument("--password", help="password for the dashboard login (default: none)")
    user.set_defaults(handler=_handler(_create_user))

    team = commands.add_parser("create-team", help="create a team")
    team.add_argument("name")
    team.set_defaults(handler=_handler(_create_team))

    member = commands.add_parser("add-member", help="add a user to a team, or change a role")
    member.add_argument("team", help="team name")
    member.add_argument("email")
    member.add_argument("--role", choices=("admin", "member", "viewer"), default="member")
    member.set_defaults(handler=_handler(_add_member))

    token = commands.add_parser(
        "create-token", help="create an API token for a user (printed once, on stdout)"
    )
    token.add_argument("email")
    token.add_argument("--name", default="cli")
    token.set_defaults(handler=_handler(_create_token))

    boot = commands.add_parser(
        "bootstrap",
        help="migrate, then create a team and its admin user, and print an API token",
    )
    boot.add_argument("email")
    boot.add_argument("--team", required=True, help="team name (created if missing)")
    boot.add_argument("--name", default="")
    boot.add_argument("--password", help="password for the dashboard login (default: none)")
    boot.set_defaults(handler=_handler(_bootstrap))


def _handler(
    command: Callable[[argparse.Namespace, str], int],
) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: resolve the database URL and turn user errors into exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args, _database_url(args))
        except (ValueError, LookupError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _settings() -> Settings:
    from store.settings import Settings

    return Settings()


def _database_url(args: argparse.Namespace) -> str:
    url: str | None = getattr(args, "database_url", None)
    if url:
        return url
    settings = _settings()
    if settings.database_url is None:
        # The embedded default lives in data_dir, which may not exist yet.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.resolved_database_url


def _shown(url: str) -> str:
    from store.db import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _session(url: str) -> Iterator[Session]:
    from store.db import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _migrate(url: str) -> str | None:
    from store.migrate import current_revision, upgrade

    upgrade(url)
    return current_revision(url)


def _init(args: argparse.Namespace, url: str) -> int:
    revision = _migrate(url)
    print(f"Database {_shown(url)} is at revision {revision}.")
    return 0


def _create_user(args: argparse.Namespace, url: str) -> int:
    from store import repositories as repo

    with _session(url) as session:
        user = repo.create_user(session, email=args.email, name=args.name, password=args.password)
        print(f"Created user {user.id} <{user.email}>.")
    return 0


def _create_team(args: argparse.Namespace, url: str) -> int:
    from store import repositories as repo

    with _session(url) as session:
        team = repo.create_team(session, name=args.name)
        print(f"Created team {team.id} {team.name!r}.")
    return 0


def _add_member(args: argparse.Namespace, url: str) -> int:
    from store import repositories as repo

    with _session(url) as session:
        team = repo.get_team_by_name(session, name=args.team)
        if team is None:
            raise LookupError(f"no team named {args.team!r}")
        user = repo.get_user_by_email(session, email=args.email)
        if user is None:
            raise LookupError(f"no user {args.email}")
        repo.add_member(session, team_id=team.id, user_id=user.id, role=args.role)
        print(f"{user.email} is {args.role} of team {team.name!r}.")
    return 0


def _create_token(args: argparse.Namespace, url: str) -> int:
    from store import repositories as repo

    with _session(url) as session:
        user = repo.get_user_by_email(session, email=args.email)
        if user is None:
            raise LookupError(f"no user {args.email}")
        token, _row = repo.create_token(session, user_id=user.id, name=args.name)
    print(f"API token for {user.email} (shown once, keep it safe):", file=sys.stderr)
    print(token)
    return 0


def _bootstrap(args: argparse.Namespace, url: str) -> int:
    from store import repositories as repo

    _migrate(url)
    with _session(url) as session:
        team = repo.get_team_by_name(session, name=args.team) or repo.create_team(
            session, name=args.team
        )
        user = repo.get_user_by_email(session, email=args.email)
        if user is None:
            user = repo.create_user(
                session, email=args.email, name=args.name, password=args.password
            )
        elif args.password:
            repo.set_password(session, user_id=user.id, password=args.password)
        repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
        token, _row = repo.create_token(session, user_id=user.id, name="bootstrap")
    print(
        f"Database {_shown(url)} migrated; {user.email} is admin of team {team.name!r} "
        f"(team id {team.id}). API token (shown once, keep it safe):",
        file=sys.stderr,
    )
    print(token)
    return 0

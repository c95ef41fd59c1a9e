"""The client commands that talk HTTP to a Distillery server, and `login`.

The commands live in modules named for what they do (cli/uploads.py: datasets and teachers;
cli/jobs.py: submit, jobs, cancel; cli/follow.py; cli/logs.py; cli/download.py;
cli/compare.py); `register` adds them all. The connection helpers other commands reuse
(Connection, connection_from, checked, ClientError, ...) are in cli/connection.py and
importable from here too.
"""

from __future__ import annotations

import argparse

from cli import backbones, compare, download, follow, jobs, logs, sweeps, uploads
from cli.connection import (
    DEFAULT_SERVER,
    ClientError,
    Connection,
    UsageError,
    checked,
    common_options,
    connection_from,
    credentials_path,
    error_detail,
    guarded,
    load_credentials,
    page_items,
    save_credentials,
)
from cli.download import download_artifact

__all__ = [
    "DEFAULT_SERVER",
    "ClientError",
    "Connection",
    "UsageError",
    "checked",
    "cmd_login",
    "common_options",
    "connection_from",
    "credentials_path",
    "download_artifact",
    "error_detail",
    "guarded",
    "load_credentials",
    "page_items",
    "register",
    "save_credentials",
]

COMMAND_MODULES = (uploads, backbones, jobs, follow, logs, download, compare, sweeps)


def cmd_login(args: argparse.Namespace) -> int:
    """Sign in with e-mail and password (or check a token) and save the credentials."""
    conn = connection_from(args)
    token = args.token
    if token is None:
        email = args.email or input("e-mail: ")
        import getpass

        password = args.password or getpass.getpass("password: ")
        with Connection(conn.server, None).client() as http:
            body = checked(http.post("/auth/login", json={"email": email, "password": password}))
        token = str(body.json()["token"])
    conn = Connection(conn.server, token)
    with conn.client() as http:
        me = checked(http.get("/me")).json()
    path = save_credentials(conn.server, token)
    teams = ", ".join(f"{t['name']} ({t['role']})" for t in me.get("teams", []))
    print(f"logged in to {conn.server} as {me.get('email')}; teams: {teams or 'none'}")
    print(f"credentials saved in {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `login` and every client command on the top-level parser."""
    login = sub.add_parser(
        "login", parents=[common_options()], help="sign in to a server, save the token"
    )
    login.add_argument("--email")
    login.add_argument("--password", help="(prompted when omitted)")
    login.set_defaults(handler=guarded(cmd_login))
    for module in COMMAND_MODULES:
        module.register(sub)

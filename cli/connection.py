"""The client's way to a server: saved credentials, the connection, errors, the common flags."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"
API = "/api/v1"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

Handler = Callable[[argparse.Namespace], int]


class ClientError(Exception):
    """A failure to report to the user (a server error's detail, a connection problem)."""


class UsageError(ClientError):
    """A command used the wrong way (exit status 2, like argparse's own errors)."""


def credentials_path() -> Path:
    """Where `distillery login` keeps the server and token (XDG config folder)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "distillery" / "credentials.json"


def load_credentials() -> dict[str, str]:
    """The saved server and token ({} when none were saved)."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(v) for k, v in data.items() if k in ("server", "token")}


def save_credentials(server: str, token: str) -> Path:
    """Save the server and token, readable by the user only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"server": server, "token": token}, fh)
    return path


@dataclass
class Connection:
    """A server URL, a token and an optional team."""

    server: str
    token: str | None
    team: int | None = None

    def headers(self) -> dict[str, str]:
        """Authorization and team headers."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.team is not None:
            headers["X-Team-Id"] = str(self.team)
        return headers

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the API root."""
        kwargs.setdefault("timeout", TIMEOUT)
        return httpx.Client(
            base_url=self.server.rstrip("/") + API, headers=self.headers(), **kwargs
        )


def connection_from(args: argparse.Namespace) -> Connection:
    """Flags first, then DISTILLERY_SERVER / DISTILLERY_TOKEN, then the saved credentials."""
    saved = load_credentials()
    server = (
        getattr(args, "server", None)
        or os.environ.get("DISTILLERY_SERVER")
        or saved.get("server")
        or DEFAULT_SERVER
    )
    token = getattr(args, "token", None) or os.environ.get("DISTILLERY_TOKEN") or saved.get("token")
    return Connection(server=server, token=token, team=getattr(args, "team", None))


def error_detail(response: httpx.Response) -> str:
    """The server's error as JSON (its `detail`), or the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return json.dumps(detail, indent=2) if not isinstance(detail, str) else detail


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or ClientError with the server's detail for a 4xx/5xx."""
    if response.status_code >= 400:
        raise ClientError(f"HTTP {response.status_code}: {error_detail(response)}")
    return response


def page_items(body: Any) -> list[dict[str, Any]]:
    """The rows of a list answer (`{data: [...], count}`, or a bare list)."""
    if isinstance(body, dict):
        return [row for row in body.get("data") or [] if isinstance(row, dict)]
    return [row for row in body or [] if isinstance(row, dict)]


def guarded(handler: Handler) -> Handler:
    """`handler` with client failures printed as `error: ...` (exit 1, usage errors 2)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args) or 0)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except httpx.TransportError as exc:
            server = connection_from(args).server
            print(f"error: cannot reach {server}: {exc}", file=sys.stderr)
            return 1

    return run


def common_options() -> argparse.ArgumentParser:
    """The parent parser of every client command: --server, --token, --team."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", help=f"server URL (env DISTILLERY_SERVER; {DEFAULT_SERVER})")
    common.add_argument("--token", help="API token (env DISTILLERY_TOKEN, or `distillery login`)")
    common.add_argument("--team", type=int, help="team id (default: your first team)")
    return common

"""The `logs` command: a job's events (state changes and log lines), optionally followed."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from cli.connection import checked, common_options, connection_from, guarded, page_items
from cli.states import ENDED

LOG_PAGE = 1000
POLL_SECONDS = 1.0


def fetch_events(http: httpx.Client, job_id: int, *, since_id: int = 0) -> list[dict[str, Any]]:
    """Every event of the job after `since_id`, oldest first (`GET /jobs/{id}/logs`, paged)."""
    events: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": LOG_PAGE}
        if since_id:
            params["since_id"] = since_id
        page = page_items(checked(http.get(f"/jobs/{job_id}/logs", params=params)).json())
        events.extend(page)
        if len(page) < LOG_PAGE:
            return events
        since_id = int(page[-1]["id"])


def event_line(event: Mapping[str, Any]) -> str:
    """One event as a line: `2025-01-02 10:11:12  info     message`."""
    when = str(event.get("created_at") or "")[:19].replace("T", " ")
    level = str(event.get("level") or "info")
    return f"{when}  {level:<7}  {event.get('message', '')}"


def print_logs(
    http: httpx.Client,
    job_id: int,
    *,
    follow: bool,
    poll: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the job's events; with `follow`, new ones too until the job ends."""
    last = 0
    while True:
        # The state is read first: a job that has ended has written all its events by then.
        state = checked(http.get(f"/jobs/{job_id}")).json().get("state") if follow else None
        for event in fetch_events(http, job_id, since_id=last):
            print(event_line(event), flush=True)
            last = max(last, int(event.get("id") or 0))
        if not follow or state in ENDED:
            return 0
        sleep(poll)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a job's events; --follow waits for new ones until the job ends."""
    with connection_from(args).client() as http:
        return print_logs(http, args.job, follow=args.follow)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `logs` on the top-level parser."""
    logs = sub.add_parser(
        "logs", parents=[common_options()], help="print a job's events (state changes, log lines)"
    )
    logs.add_argument("job", type=int)
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new events until the job ends"
    )
    logs.set_defaults(handler=guarded(cmd_logs))

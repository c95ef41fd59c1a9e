"""A job's event stream as the client reads it: Server-Sent Events frames and their data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events stream."""
    event = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield event, "\n".join(data)
            event = "message"
            data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def event_data(data: str) -> Any:
    """An event's data as JSON, or the raw text when it is not JSON."""
    try:
        return json.loads(data)
    except ValueError:
        return data


def state_of(payload: Any) -> str | None:
    """The job state a `state` event carries."""
    if isinstance(payload, dict):
        value = payload.get("state")
        return str(value) if value else None
    return str(payload) if isinstance(payload, str) and payload else None


def progress_of(payload: Any) -> dict[str, Any]:
    """The progress record a `progress` event carries (bare, or under `progress`)."""
    if isinstance(payload, dict):
        inner = payload.get("progress")
        return inner if isinstance(inner, dict) else payload
    return {}

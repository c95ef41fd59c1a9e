"""The live event stream: metric, log, progress and state events, ending at a terminal state."""

from __future__ import annotations

import json
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from tests.api.factories import distill_spec, make_dataset, make_teacher, set_job
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def read_events(client: TestClient, url: str, headers: dict[str, str]) -> list[tuple[str, dict]]:
    """(event, data) of every frame until the server ends the stream."""
    events: list[tuple[str, dict]] = []
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name is not None:
                events.append((name, json.loads(line.removeprefix("data: "))))
                name = None
    return events


def new_job(client: TestClient, team: TeamContext, factory: sessionmaker[Session]) -> int:
    """A queued job of the team."""
    spec = distill_spec(make_dataset(factory, team), make_teacher(factory, team))
    job_id: int = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec}).json()["id"]
    return job_id


def test_replay_from_the_start_ends_with_the_terminal_state(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    job_id = new_job(client, team, session_factory)
    with session_scope(session_factory) as s:
        repo.add_metric_points(
            s, job_id=job_id, points=[{"name": "loss/total", "step": 1, "value": 0.5}]
        )
        repo.add_event(s, job_id=job_id, message="Epoch 1 done.")
    set_job(session_factory, job_id, state="succeeded", progress={"stage": "distill", "step": 1})
    events = read_events(
        client, f"{API}/jobs/{job_id}/events", {**team.headers, "Last-Event-ID": "0-0"}
    )
    kinds = [name for name, _ in events]
    # Stored without a stage, the point reads as the job's kind.
    point = {"name": "loss/total", "step": 1, "epoch": 0, "value": 0.5, "stage": "distill"}
    assert ("metric", point) in events
    assert [d["message"] for n, d in events if n == "log"] == ["Job queued.", "Epoch 1 done."]
    assert ("progress", {"stage": "distill", "step": 1}) in events
    assert kinds[-1] == "state" and events[-1][1]["state"] == "succeeded"


def test_live_changes_arrive_and_the_stream_stops_when_the_job_fails(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    job_id = new_job(client, team, session_factory)

    def worker() -> None:
        # What a worker does while someone watches: progress, a point, then it fails.
        time.sleep(0.3)
        set_job(session_factory, job_id, state="running", attempt=1, progress={"step": 3})
        with session_scope(session_factory) as s:
            repo.add_metric_points(
                s, job_id=job_id, points=[{"name": "lr", "step": 3, "value": 0.001}]
            )
        time.sleep(0.3)
        set_job(session_factory, job_id, state="failed", error="boom")

    # EventSource cannot send headers: a ticket for this job's stream travels in the URL.
    ticket = client.post(f"{API}/jobs/{job_id}/events/ticket", headers=team.headers)
    assert ticket.status_code == 200, ticket.text
    assert ticket.json()["expires_in"] == 60
    thread = threading.Thread(target=worker)
    thread.start()
    url = f"{API}/jobs/{job_id}/events?ticket={ticket.json()['ticket']}"
    events = read_events(client, url, {})
    thread.join()
    states = [d["state"] for n, d in events if n == "state"]
    assert states[0] == "queued" and states[-1] == "failed"
    assert "running" in states
    point = {"name": "lr", "step": 3, "epoch": 0, "value": 0.001, "stage": "distill"}
    assert ("metric", point) in events
    assert ("progress", {"step": 3}) in events
    # Only new rows without Last-Event-ID: the "Job queued." event was before the connection.
    assert all(d["message"] != "Job queued." for n, d in events if n == "log")
    assert events[-1][1]["error"] == "boom"

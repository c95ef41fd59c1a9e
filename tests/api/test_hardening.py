"""Hardening found by an attack campaign: local paths, URL tokens, input bounds, outages, aborts."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.logging_filters import ACCESS_LOGGER, redact_query
from api.main import create_app
from api.tickets import Ticket, sign_ticket
from store import repositories as repo
from store.db import is_sqlite, session_scope
from store.models import Dataset
from store.settings import Settings
from tests.api.factories import (
    distill_spec,
    make_dataset,
    make_teacher,
    row_count,
    set_job,
    tiny_zip,
)
from tests.platform_fixtures import TeamContext
from tests.worker.harness import free_port, wait_for

API = "/api/v1"
BEYOND_INT4 = 2**31
BEYOND_INT8 = 2**63


def finished_job(factory: sessionmaker[Session], team: TeamContext) -> int:
    """A succeeded job of the team, straight in the database (its event stream ends at once)."""
    with session_scope(factory) as s:
        job = repo.create_job(
            s,
            team_id=team.team_id,
            created_by=team.user_id,
            kind="distill",
            spec={"kind": "distill", "data": {"dataset_id": 1}},
            name=f"job-{uuid.uuid4().hex[:6]}",
        )
        job_id = job.id
    set_job(factory, job_id, state="succeeded")
    return job_id


def locs(response: httpx.Response) -> list[list[Any]]:
    """The `loc` of every field error of a 4xx answer."""
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return [e["loc"] for e in detail]


class Records(logging.Handler):
    """Keeps every record it sees (for loggers that do not propagate to caplog)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)

    def messages(self) -> list[str]:
        """The records' messages with their arguments applied."""
        return [r.getMessage() for r in self.records]


@contextmanager
def live_server(app: FastAPI, *, watch: tuple[str, ...] = ()) -> Iterator[tuple[str, Records]]:
    """`app` under a real uvicorn (access log on) in a thread; records of `watch` loggers."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info")
    server = uvicorn.Server(config)
    records = Records()
    # uvicorn.Config configured logging (replacing handlers); attach ours after it.
    loggers = [logging.getLogger(name) for name in watch]
    for logger in loggers:
        logger.addHandler(records)
    thread = threading.Thread(target=server.run, name="hardening-api", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}", records
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for logger in loggers:
            logger.removeHandler(records)


# --- 1. every spec field that names a file takes ids only -------------------------------------


def test_pretrained_backbones_are_refused_naming_the_field(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    spec = distill_spec(make_dataset(session_factory, team), make_teacher(session_factory, team))
    spec["teacher"]["pretrained_backbone"] = "/srv/other-team/teacher.pt"
    spec["student"]["pretrained_backbone"] = "/etc/passwd"
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 422, response.text
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    for section in ("teacher", "student"):
        message = errors[("body", "spec", section, "pretrained_backbone")]
        assert "local paths are not allowed on the platform" in message
        assert f"use {section}.backbone_id (uploaded backbone weights)" in message
    assert "/etc/passwd" not in response.text and "other-team" not in response.text
    assert client.get(f"{API}/jobs", headers=team.headers).json()["count"] == 0


# --- 2. tokens only in the header; tickets for URLs --------------------------------------------


def test_a_token_in_the_query_string_no_longer_authenticates(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    job_id = finished_job(session_factory, team)
    for path in ("/me", "/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/events"):
        response = client.get(f"{API}{path}", params={"access_token": team.token})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    # The same token in the header works.
    assert client.get(f"{API}/jobs/{job_id}", headers=team.headers).status_code == 200


def test_an_events_ticket_opens_only_its_job_and_only_for_a_while(
    client: TestClient,
    team: TeamContext,
    team_factory: Callable[..., TeamContext],
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    job_a = finished_job(session_factory, team)
    job_b = finished_job(session_factory, team)
    issued = client.post(f"{API}/jobs/{job_a}/events/ticket", headers=team.headers)
    assert issued.status_code == 200, issued.text
    assert issued.json()["expires_in"] == 60
    ticket = issued.json()["ticket"]
    assert team.token not in ticket

    opened = client.get(
        f"{API}/jobs/{job_a}/events", params={"ticket": ticket, "last_event_id": "0-0"}
    )
    assert opened.status_code == 200, opened.text
    assert '"state":"succeeded"' in opened.text

    other_job = client.get(f"{API}/jobs/{job_b}/events", params={"ticket": ticket})
    assert other_job.status_code == 401
    assert "another object" in other_job.json()["detail"]

    now = int(time.time())
    expired = sign_ticket(
        Ticket("events", job_a, team.user_id, team.team_id, now - 1), settings.resolved_secret_key
    )
    forged = sign_ticket(
        Ticket("events", job_a, team.user_id, team.team_id, now + 60), "not-our-key"
    )
    for bad in (expired, forged, ticket + "x", "t1.e30.AAAA", "garbage"):
        response = client.get(f"{API}/jobs/{job_a}/events", params={"ticket": bad})
        assert response.status_code == 401, (bad, response.text)
    assert (
        "expired"
        in client.get(f"{API}/jobs/{job_a}/events", params={"ticket": expired}).json()["detail"]
    )

    # Another team's job gets no ticket; a member who left loses the tickets they had.
    rival = team_factory()
    assert (
        client.post(f"{API}/jobs/{job_a}/events/ticket", headers=rival.headers).status_code == 404
    )
    member = team.add_member(role="viewer")
    mine = client.post(f"{API}/jobs/{job_a}/events/ticket", headers=member.headers).json()["ticket"]
    with session_scope(session_factory) as s:
        repo.remove_member(s, team_id=team.team_id, user_id=member.user_id)
    assert client.get(f"{API}/jobs/{job_a}/events", params={"ticket": mine}).status_code == 401


def test_a_download_ticket_opens_one_artifact(
    client: TestClient,
    team: TeamContext,
    session_factory: sessionmaker[Session],
    blob_root: Path,
) -> None:
    job_id = finished_job(session_factory, team)
    for name in ("pictures/a.png", "report.md"):
        key = f"jobs/{job_id}/{name}"
        with session_scope(session_factory) as s:
            repo.add_artifact(
                s,
                job_id=job_id,
                kind="report",
                name=name,
                key=key,
                size_bytes=5,
                content_type="text/plain",
            )
        (blob_root / key).parent.mkdir(parents=True, exist_ok=True)
        (blob_root / key).write_bytes(name.encode())
    issued = client.post(
        f"{API}/jobs/{job_id}/artifacts/pictures/a.png/ticket", headers=team.headers
    )
    assert issued.status_code == 200, issued.text
    ticket = issued.json()["ticket"]
    got = client.get(f"{API}/jobs/{job_id}/artifacts/pictures/a.png", params={"ticket": ticket})
    assert got.status_code == 200 and got.content == b"pictures/a.png"
    other = client.get(f"{API}/jobs/{job_id}/artifacts/report.md", params={"ticket": ticket})
    assert other.status_code == 401
    events = client.get(f"{API}/jobs/{job_id}/events", params={"ticket": ticket})
    assert events.status_code == 401
    missing = client.post(f"{API}/jobs/{job_id}/artifacts/nope.bin/ticket", headers=team.headers)
    assert missing.status_code == 404


def test_redaction_of_credential_query_parameters() -> None:
    line = (
        '127.0.0.1:5 - "GET /api/v1/jobs/3/events?ticket=t1.abc.def&limit=5'
        '&access%5Ftoken=SECRET1&Token=SECRET2&tokens=kept HTTP/1.1" 200'
    )
    redacted = redact_query(line)
    assert "t1.abc.def" not in redacted
    assert "SECRET1" not in redacted and "SECRET2" not in redacted
    assert "ticket=[redacted]" in redacted and "limit=5" in redacted
    assert "tokens=kept" in redacted and redacted.endswith('HTTP/1.1" 200')
    assert redact_query("/api/v1/jobs?limit=5") == "/api/v1/jobs?limit=5"


def test_the_access_log_of_a_real_server_holds_no_token_or_ticket(
    settings: Settings, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    job_id = finished_job(session_factory, team)
    with live_server(create_app(settings), watch=(ACCESS_LOGGER,)) as (url, records):
        with httpx.Client(base_url=f"{url}{API}", timeout=30) as http:
            ticket = http.post(f"/jobs/{job_id}/events/ticket", headers=team.headers).json()[
                "ticket"
            ]
            stream = http.get(f"/jobs/{job_id}/events", params={"ticket": ticket})
            assert stream.status_code == 200
            refused = http.get("/jobs", params={"access_token": team.token, "token": team.token})
            assert refused.status_code == 401
        wait_for(lambda: len(records.records) >= 3, timeout=10, what="three access log lines")
    lines = records.messages()
    assert any(f"/jobs/{job_id}/events?ticket=[redacted]" in line for line in lines), lines
    assert any("access_token=[redacted]" in line for line in lines), lines
    for line in lines:
        assert ticket not in line and team.token not in line


# --- 3. input bounds: integers the database holds, text without NUL ------------------------


def test_ids_and_offsets_beyond_the_database_range_are_422_naming_the_parameter(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    job_id = finished_job(session_factory, team)
    cases: list[tuple[str, str, dict[str, Any], list[Any]]] = [
        ("GET", f"/jobs/{BEYOND_INT4}", {}, ["path", "job_id"]),
        ("GET", "/jobs/0", {}, ["path", "job_id"]),
        ("POST", f"/jobs/{BEYOND_INT4}/cancel", {}, ["path", "job_id"]),
        ("POST", f"/jobs/{BEYOND_INT4}/events/ticket", {}, ["path", "job_id"]),
        ("GET", f"/jobs/{BEYOND_INT8 * 10}/artifacts/a.png", {}, ["path", "job_id"]),
        ("GET", f"/datasets/{BEYOND_INT4}", {}, ["path", "dataset_id"]),
        ("DELETE", f"/teachers/{BEYOND_INT4}", {}, ["path", "teacher_id"]),
        ("GET", f"/jobs?offset={BEYOND_INT4}", {}, ["query", "offset"]),
        ("GET", f"/datasets?offset={BEYOND_INT8}", {}, ["query", "offset"]),
        ("GET", f"/jobs?dataset_id={BEYOND_INT4}", {}, ["query", "dataset_id"]),
        ("GET", f"/jobs?created_by={BEYOND_INT4}", {}, ["query", "created_by"]),
        ("GET", f"/jobs?created_by={'9' * 5000}", {}, ["query", "created_by"]),
        ("GET", f"/jobs/{job_id}/logs?since_id={BEYOND_INT8}", {}, ["query", "since_id"]),
        ("GET", f"/compare?jobs={job_id},{BEYOND_INT4}", {}, ["query", "jobs"]),
        ("GET", "/compare?jobs=\u00b2", {}, ["query", "jobs"]),
        ("GET", "/jobs", {"X-Team-Id": str(BEYOND_INT4)}, ["header", "X-Team-Id"]),
        ("GET", "/jobs", {"X-Team-Id": "9" * 5000}, ["header", "X-Team-Id"]),
    ]
    for method, path, headers, loc in cases:
        response = client.request(method, f"{API}{path}", headers={**team.headers, **headers})
        assert response.status_code == 422, (path, response.status_code, response.text)
        assert loc in locs(response), (path, response.text)
    spec = distill_spec(BEYOND_INT4, BEYOND_INT8)
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 422, response.text
    assert ["body", "spec", "data", "dataset_id"] in locs(response)
    assert ["body", "spec", "teacher", "teacher_id"] in locs(response)
    # A resume cursor past the database's ids is ignored, not an error.
    for cursor in (f"{BEYOND_INT8}-1", "9" * 5000):
        stream = client.get(
            f"{API}/jobs/{job_id}/events", headers={**team.headers, "Last-Event-ID": cursor}
        )
        assert stream.status_code == 200 and '"state":"succeeded"' in stream.text


def test_nul_bytes_are_422_naming_the_field_in_queries_paths_and_bodies(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    job_id = finished_job(session_factory, team)
    queries = [
        ("/jobs?q=a%00b", ["query", "q"]),
        ("/datasets?q=%00", ["query", "q"]),
        ("/teachers?status=re%00dy", ["query", "status"]),
        (f"/jobs/{job_id}/metrics?names=loss%00", ["query", "names"]),
        (f"/jobs/{job_id}/artifacts/a%00b.png", ["path", "name"]),
    ]
    for path, loc in queries:
        response = client.get(f"{API}{path}", headers=team.headers)
        assert response.status_code == 422, (path, response.text)
        assert loc in locs(response), (path, response.text)

    login = client.post(f"{API}/auth/login", json={"email": "a\x00@b.test", "password": "x\x00"})
    assert login.status_code == 422
    assert ["body", "email"] in locs(login) and ["body", "password"] in locs(login)

    spec = distill_spec(make_dataset(session_factory, team), make_teacher(session_factory, team))
    spec["data"]["train_split"] = "tr\x00ain"
    spec["distill"] = {"levels": {"p2\x00": {}}}
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec, "name": "\x00"})
    assert response.status_code == 422, response.text
    found = locs(response)
    for loc in (
        ["body", "name"],
        ["body", "spec", "data", "train_split"],
        ["body", "spec", "distill", "levels", "p2\x00"],
    ):
        assert loc in found, found
    assert "NUL" in response.text

    # Python's JSON reader takes NaN; PostgreSQL's json type does not.
    raw = b'{"spec": {"kind": "teacher", "data": {"dataset_id": 1}, "schedule": {"lr": NaN}}}'
    nan = client.post(
        f"{API}/jobs", headers={**team.headers, "Content-Type": "application/json"}, content=raw
    )
    assert nan.status_code == 422 and ["body", "spec", "schedule", "lr"] in locs(nan)
    assert client.get(f"{API}/jobs", headers=team.headers).json()["count"] == 1


def test_nul_bytes_in_upload_form_fields_are_422_and_store_nothing(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session], blob_root: Path
) -> None:
    # Written by hand: HTTP clients percent-encode a NUL in a file name; an attacker need not.
    cases: list[tuple[str, dict[str, str], str, list[Any]]] = [
        ("/datasets", {"name": "tiny\x00"}, "d.zip", ["body", "name"]),
        ("/datasets", {"format": "coco\x00"}, "d.zip", ["body", "format"]),
        ("/datasets", {}, "d\x00.zip", ["body", "file"]),
        (
            "/teachers",
            {"arch": "retinanet_resnet18_fpn", "name": "t\x00"},
            "t.pt",
            ["body", "name"],
        ),
    ]
    for path, fields, filename, loc in cases:
        boundary = uuid.uuid4().hex
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for name, value in fields.items()
        )
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/zip\r\n\r\n'
        ).encode()
        body += tiny_zip() + f"\r\n--{boundary}--\r\n".encode()
        response = client.post(
            f"{API}{path}",
            headers={
                **team.headers,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            content=body,
        )
        assert response.status_code == 422, (fields, filename, response.text)
        assert loc in locs(response), response.text
    assert row_count(session_factory, Dataset, team.team_id) == 0
    assert not blob_root.exists() or [p for p in blob_root.rglob("*") if p.is_file()] == []


# --- 4. a database outage is a 503 that names no host --------------------------------------


@pytest.fixture
def database_down(settings: Settings, db_url: str, tmp_path: Path) -> Settings:
    """The test's settings with a database that cannot be opened (same kind as `db_url`)."""
    if is_sqlite(db_url):
        folder = tmp_path / "not-a-database"
        folder.mkdir()
        url = f"sqlite:///{folder}"  # a folder: SQLite cannot open it
    else:
        url = "postgresql+psycopg://postgres@127.0.0.1:1/distillery"  # nothing listens there
    return settings.model_copy(update={"database_url": url})


def test_a_database_outage_answers_503_and_readyz_names_only_the_part(
    database_down: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with TestClient(create_app(database_down)) as down:
        for method, path in (("GET", "/jobs"), ("GET", "/me"), ("POST", "/auth/login")):
            body = {"email": "a@b.test", "password": "x"} if method == "POST" else None
            response = down.request(
                method, f"{API}{path}", headers={"Authorization": "Bearer abc"}, json=body
            )
            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"detail": "the database is unavailable; try again shortly"}
            assert int(response.headers["retry-after"]) > 0
        ready = down.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "unavailable", "broker": "ok", "blob_store": "ok"}
    for leak in ("127.0.0.1", "5432", "not-a-database", "psycopg", "sqlite", "refused"):
        assert leak not in ready.text.lower()
    # The details stay in the server's log, as warnings, without tracebacks.
    assert any("readiness: database failed" in r.getMessage() for r in caplog.records)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- 5. a client that hangs up mid-upload is no server error -------------------------------


def test_a_client_disconnect_mid_upload_logs_info_and_leaves_nothing(
    settings: Settings,
    team: TeamContext,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    boundary = uuid.uuid4().hex
    head = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="name"\r\n\r\nhalf\r\n'
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="d.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        + tiny_zip()
        + b"\0" * 8000
    )
    with live_server(create_app(settings), watch=("uvicorn",)) as (url, records):
        port = int(url.rsplit(":", 1)[1])
        request = (
            "POST /api/v1/datasets HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {team.token}\r\n"
            f"X-Team-Id: {team.team_id}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + 40_000}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request + head)
            time.sleep(0.5)  # the server is reading the file part now
        wait_for(
            lambda: any("upload aborted by the client" in r.getMessage() for r in caplog.records),
            timeout=20,
            what="the aborted upload to be logged",
        )
        time.sleep(0.2)
    aborted = [r for r in caplog.records if "upload aborted by the client" in r.getMessage()]
    assert aborted[0].levelno == logging.INFO
    errors = [r for r in [*caplog.records, *records.records] if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert [p for p in (settings.data_dir / "tmp").rglob("*") if p.is_file()] == []
    blobs = settings.resolved_blob_root
    assert not blobs.exists() or [p for p in blobs.rglob("*") if p.is_file()] == []
    assert row_count(session_factory, Dataset, team.team_id) == 0

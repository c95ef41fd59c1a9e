"""Comparing jobs (metrics side by side, spec differences), health probes, docs and the root."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app, web_dist_dir
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

API = "/api/v1"


def test_compare_puts_metrics_side_by_side_and_lists_spec_differences(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = make_dataset(session_factory, team)
    teacher_id = make_teacher(session_factory, team)
    full = distill_spec(dataset_id, teacher_id)
    no_p2 = distill_spec(
        dataset_id,
        teacher_id,
        levels={"p2": {"spatial": 0.0}, "p3": {}, "p4": {}, "p5": {}},
    )
    ids = [
        client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec}).json()["id"]
        for spec in (full, no_p2)
    ]
    set_job(
        session_factory,
        ids[0],
        state="succeeded",
        metrics={
            "student": {"AP": 0.31, "AP_small": 0.12},
            "teacher": {"AP": 0.40},
            "efficiency": {"student": {"params": 1e6}, "ratios": {"params": 0.1}},
        },
    )
    response = client.get(f"{API}/compare?jobs={ids[0]},{ids[1]}", headers=team.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [j["id"] for j in body["jobs"]] == ids
    assert body["metrics"]["student/AP"] == [0.31, None]
    assert body["metrics"]["student/AP_small"] == [0.12, None]
    assert body["metrics"]["teacher/AP"] == [0.40, None]
    assert body["metrics"]["efficiency/ratios/params"] == [0.1, None]
    assert {"path": "distill.levels.p2.spatial", "values": [1.0, 0.0]} in body["spec_diff"]
    assert all(d["path"] != "data.dataset_id" for d in body["spec_diff"])
    bad = client.get(f"{API}/compare?jobs=1,x", headers=team.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "jobs"]


def test_health_readiness_docs_and_root(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "blob_store": "ok"}
    assert client.get(f"{API}/readyz").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/api/v1/jobs" in client.get(f"{API}/openapi.json").json()["paths"]
    root = client.get("/")
    assert root.status_code == 200
    if web_dist_dir() is None:
        assert "not built" in root.json()["message"]
    else:
        assert "text/html" in root.headers["content-type"]


def test_broker_down_fails_readyz_and_uploads_leave_nothing(
    settings: Settings, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    down = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:1/0", "job_queue": f"q{uuid.uuid4().hex[:6]}"}
    )
    with TestClient(create_app(down)) as client:
        response = client.get("/readyz")
        upload = client.post(
            f"{API}/datasets", headers=team.headers, files={"file": ("d.zip", tiny_zip())}
        )
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["blob_store"] == "ok"
    assert checks["broker"] == "unavailable"
    assert "127.0.0.1" not in response.text  # /readyz is public: no hosts or ports
    assert upload.status_code == 503
    assert "nothing was stored" in upload.json()["detail"]
    assert row_count(session_factory, Dataset, team.team_id) == 0
    root = down.resolved_blob_root
    assert [p for p in root.rglob("*") if p.is_file()] == []

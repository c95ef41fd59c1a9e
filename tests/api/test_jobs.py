"""Jobs: spec validation, platform references, queueing, filters, state transitions, delete."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from store.models import Job, utcnow
from tests.api.broker_probe import Broker
from tests.api.factories import distill_spec, make_dataset, make_teacher, set_job
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def test_create_job_stores_spec_and_enqueues_on_the_job_queue(
    client: TestClient, team: TeamContext, broker: Broker, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = make_dataset(session_factory, team, name="tiny-coco")
    teacher_id = make_teacher(session_factory, team, arch="retinanet_resnet18_fpn", fpn_channels=64)
    response = client.post(
        f"{API}/jobs", headers=team.headers, json={"spec": distill_spec(dataset_id, teacher_id)}
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] == "queued"
    assert job["kind"] == "distill"
    assert job["name"] == "distill on tiny-coco"
    assert (job["dataset_id"], job["teacher_id"]) == (dataset_id, teacher_id)
    assert job["creator_email"] == team.email
    assert len(job["spec_hash"]) == 16
    # The teacher's architecture comes from the referenced teacher when the spec omits it.
    assert job["spec"]["teacher"]["arch"] == "retinanet_resnet18_fpn"
    assert job["spec"]["teacher"]["fpn_channels"] == 64
    assert broker.enqueued(broker.job_queue) == [("distillery.run_job", [job["id"]])]
    fetched = client.get(f"{API}/jobs/{job['id']}", headers=team.headers).json()
    assert fetched["spec"] == job["spec"]


def test_spec_errors_are_422_with_the_field_path(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = make_dataset(session_factory, team)
    teacher_id = make_teacher(session_factory, team)
    spec = distill_spec(dataset_id, teacher_id)
    spec["data"]["image_size"] = 8
    spec["schedule"]["epoks"] = 3
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert ("body", "spec", "data", "image_size") in errors
    assert ("body", "spec", "schedule", "epoks") in errors

    local = distill_spec(dataset_id, teacher_id)
    local["data"] = {"path": "/etc"}
    refused = client.post(f"{API}/jobs", headers=team.headers, json={"spec": local})
    assert refused.status_code == 422
    locs = [tuple(e["loc"]) for e in refused.json()["detail"]]
    assert ("body", "spec", "data", "path") in locs
    assert ("body", "spec", "data", "dataset_id") in locs

    contradicting = distill_spec(dataset_id, teacher_id)
    contradicting["teacher"]["arch"] = "fcos_resnet50_fpn"
    mismatch = client.post(f"{API}/jobs", headers=team.headers, json={"spec": contradicting})
    assert mismatch.json()["detail"][0]["loc"] == ["body", "spec", "teacher", "arch"]


def test_dataset_must_be_a_ready_dataset_of_the_team(
    client: TestClient,
    team_factory: Callable[..., TeamContext],
    session_factory: sessionmaker[Session],
    broker: Broker,
) -> None:
    team = team_factory()
    other = team_factory()
    teacher_id = make_teacher(session_factory, team)
    for dataset_id, words in (
        (make_dataset(session_factory, team, status="validating"), "is validating, not ready"),
        (make_dataset(session_factory, other), "not found"),
    ):
        response = client.post(
            f"{API}/jobs", headers=team.headers, json={"spec": distill_spec(dataset_id, teacher_id)}
        )
        assert response.status_code == 422
        error = response.json()["detail"][0]
        assert error["loc"] == ["body", "spec", "data", "dataset_id"]
        assert words in error["msg"]
    unready_teacher = make_teacher(session_factory, team, status="invalid")
    response = client.post(
        f"{API}/jobs",
        headers=team.headers,
        json={"spec": distill_spec(make_dataset(session_factory, team), unready_teacher)},
    )
    assert response.json()["detail"][0]["loc"] == ["body", "spec", "teacher", "teacher_id"]
    assert broker.enqueued(broker.job_queue) == []


def test_list_filters_and_pagination(
    client: TestClient,
    team_factory: Callable[..., TeamContext],
    session_factory: sessionmaker[Session],
) -> None:
    team = team_factory()
    colleague = team.add_member(role="member")
    first = make_dataset(session_factory, team, name="first")
    second = make_dataset(session_factory, team, name="second")
    teacher_id = make_teacher(session_factory, team)

    def create(dataset_id: int, name: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "X-Team-Id": str(team.team_id)}
        body = {"spec": distill_spec(dataset_id, teacher_id), "name": name}
        response = client.post(f"{API}/jobs", headers=headers, json=body)
        assert response.status_code == 201, response.text
        job_id: int = response.json()["id"]
        return job_id

    a = create(first, "alpha run", team.token)
    b = create(second, "beta run", team.token)
    c = create(first, "gamma sweep", colleague.token)
    set_job(session_factory, b, state="failed")

    def ids(query: str) -> tuple[list[int], int]:
        body = client.get(f"{API}/jobs?{query}", headers=team.headers).json()
        return [j["id"] for j in body["data"]], body["count"]

    assert ids("") == ([c, b, a], 3)  # newest first
    assert ids("limit=2") == ([c, b], 3)
    assert ids("limit=2&offset=2") == ([a], 3)
    assert ids("state=failed") == ([b], 1)
    assert ids("state=queued,failed") == ([c, b, a], 3)
    assert ids(f"dataset_id={first}") == ([c, a], 2)
    assert ids(f"created_by={colleague.user_id}") == ([c], 1)
    assert ids("created_by=me") == ([b, a], 2)
    assert ids("q=run") == ([b, a], 2)
    assert ids("kind=teacher") == ([], 0)
    listed = client.get(f"{API}/jobs", headers=team.headers).json()["data"]
    assert listed[0]["creator_email"] == colleague.email
    bad = client.get(f"{API}/jobs?state=done", headers=team.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "state"]


def test_job_lists_are_compressed_for_clients_that_accept_gzip(
    client: TestClient,
    team_factory: Callable[..., TeamContext],
    session_factory: sessionmaker[Session],
) -> None:
    team = team_factory()
    dataset_id = make_dataset(session_factory, team)
    teacher_id = make_teacher(session_factory, team)
    for i in range(5):
        body = {"spec": distill_spec(dataset_id, teacher_id), "name": f"run {i}"}
        assert client.post(f"{API}/jobs", headers=team.headers, json=body).status_code == 201
    plain = client.get(f"{API}/jobs", headers={**team.headers, "Accept-Encoding": "identity"})
    packed = client.get(f"{API}/jobs", headers={**team.headers, "Accept-Encoding": "gzip"})
    assert plain.headers.get("content-encoding") is None
    assert packed.headers["content-encoding"] == "gzip"
    # httpx decodes the body: the same rows, fewer bytes on the wire.
    assert packed.json() == plain.json()
    assert int(packed.headers["content-length"]) < len(plain.content) / 2


def test_cancel_retry_and_delete_transitions(
    client: TestClient,
    team: TeamContext,
    broker: Broker,
    session_factory: sessionmaker[Session],
    blob_root: Path,
) -> None:
    spec = distill_spec(make_dataset(session_factory, team), make_teacher(session_factory, team))

    def new_job() -> int:
        job_id: int = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec}).json()[
            "id"
        ]
        return job_id

    queued = new_job()
    canceled = client.post(f"{API}/jobs/{queued}/cancel", headers=team.headers).json()
    assert canceled["state"] == "canceled" and canceled["finished_at"] is not None
    again = client.post(f"{API}/jobs/{queued}/cancel", headers=team.headers)
    assert again.status_code == 409

    running = new_job()
    set_job(session_factory, running, state="running", attempt=1, started_at=utcnow())
    requested = client.post(f"{API}/jobs/{running}/cancel", headers=team.headers).json()
    assert (requested["state"], requested["cancel_requested"]) == ("running", True)
    assert client.delete(f"{API}/jobs/{running}", headers=team.headers).status_code == 409

    set_job(session_factory, running, state="failed", error="CUDA out of memory")
    retried = client.post(f"{API}/jobs/{running}/retry", headers=team.headers).json()
    assert retried["state"] == "queued"
    assert retried["error"] is None and retried["cancel_requested"] is False
    assert broker.enqueued(broker.job_queue).count(("distillery.run_job", [running])) == 2
    assert client.post(f"{API}/jobs/{running}/retry", headers=team.headers).status_code == 409

    set_job(session_factory, running, state="succeeded")
    blob = blob_root / f"jobs/{running}/student.onnx"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"onnx")
    with session_scope(session_factory) as s:
        repo.add_artifact(
            s,
            job_id=running,
            kind="student_onnx",
            name="student.onnx",
            key=f"jobs/{running}/student.onnx",
        )
    assert client.delete(f"{API}/jobs/{running}", headers=team.headers).status_code == 204
    assert client.get(f"{API}/jobs/{running}", headers=team.headers).status_code == 404
    assert not blob.exists()


def test_other_teams_job_is_404(
    client: TestClient,
    team_factory: Callable[..., TeamContext],
    session_factory: sessionmaker[Session],
) -> None:
    owner = team_factory()
    stranger = team_factory()
    spec = distill_spec(make_dataset(session_factory, owner), make_teacher(session_factory, owner))
    job_id = client.post(f"{API}/jobs", headers=owner.headers, json={"spec": spec}).json()["id"]
    for method, path in (
        ("GET", f"/jobs/{job_id}"),
        ("POST", f"/jobs/{job_id}/cancel"),
        ("GET", f"/jobs/{job_id}/metrics"),
        ("GET", f"/jobs/{job_id}/artifacts"),
        ("GET", f"/jobs/{job_id}/events"),
        ("DELETE", f"/jobs/{job_id}"),
        ("GET", f"/compare?jobs={job_id}"),
    ):
        response = client.request(method, f"{API}{path}", headers=stranger.headers)
        assert response.status_code == 404, (method, path)
    assert client.get(f"{API}/jobs/{job_id}", headers=owner.headers).status_code == 200


def test_metrics_series_and_logs(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    spec = distill_spec(make_dataset(session_factory, team), make_teacher(session_factory, team))
    job_id = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec}).json()["id"]
    with session_scope(session_factory) as s:
        repo.add_metric_points(
            s,
            job_id=job_id,
            points=[
                {"name": "loss/total", "step": 2, "epoch": 0, "value": 1.5},
                {"name": "loss/total", "step": 1, "epoch": 0, "value": 2.5},
                {"name": "kd/spatial/p2", "step": 1, "value": 0.25},
            ],
        )
        repo.add_event(s, job_id=job_id, message="Epoch 1 of 1.")
    series = client.get(f"{API}/jobs/{job_id}/metrics", headers=team.headers).json()["series"]
    # Stored without a stage: read as the job's kind, without a global step.
    assert [{k: p[k] for k in ("step", "epoch", "value", "stage", "global_step")}
            for p in series["loss/total"]] == [
        {"step": 1, "epoch": 0, "value": 2.5, "stage": "distill", "global_step": None},
        {"step": 2, "epoch": 0, "value": 1.5, "stage": "distill", "global_step": None},
    ]  # fmt: skip
    only = client.get(f"{API}/jobs/{job_id}/metrics?names=kd/spatial/p2", headers=team.headers)
    assert list(only.json()["series"]) == ["kd/spatial/p2"]
    logs = client.get(f"{API}/jobs/{job_id}/logs", headers=team.headers).json()
    assert [e["message"] for e in logs["data"]] == ["Job queued.", "Epoch 1 of 1."]


def test_list_rows_are_summaries_without_the_spec(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = make_dataset(session_factory, team)
    teacher_id = make_teacher(session_factory, team)
    presets = {p["id"]: p["distill"] for p in client.get(f"{API}/spec/schema").json()["presets"]}
    spec = distill_spec(dataset_id, teacher_id)
    spec["distill"] = presets["pkd"]
    spec["schedule"]["lr"] = 0.02
    created = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec}).json()
    set_job(
        session_factory,
        created["id"],
        state="running",
        progress={
            "stage": "train",
            "epoch": 1,
            "epochs": 1,
            "step": 1,
            "total_steps": 2,
            "eta_seconds": 3.0,
            "losses": {"kd/spatial/p2": 0.5},
        },
        metrics={
            "student": {"AP": 0.25, "AP_small": 0.125, "AP50": 0.5, "per_class": {"a": 0.1}},
            "teacher": {"AP": 0.5, "AP_small": -1.0, "AP_medium": 0.25, "AP_large": 0.75},
            "efficiency": {"student": {"params": 1000}},
        },
    )
    teacher_job = client.post(
        f"{API}/jobs",
        headers=team.headers,
        json={
            "spec": {
                "kind": "teacher",
                "data": {"dataset_id": dataset_id, "image_size": 96},
                "teacher": {"arch": "fcos_resnet18_fpn"},
            }
        },
    ).json()

    rows = {j["id"]: j for j in client.get(f"{API}/jobs", headers=team.headers).json()["data"]}
    row = rows[created["id"]]
    assert "spec" not in row and "error" not in row
    assert row["spec_summary"] == {
        "student_arch": "retinanet_mobilenet_v2_fpn",
        "teacher_arch": "retinanet_resnet18_fpn",
        "preset": "pkd",
        "lambda_kd": presets["pkd"]["lambda_kd"],
        "lr": 0.02,
        "epochs": 1,
        "image_size": 64,
    }
    assert row["spec_hash"] == created["spec_hash"]
    assert row["progress"] == {
        "stage": "train",
        "epoch": 1,
        "epochs": 1,
        "step": 1,
        "total_steps": 2,
        "eta_seconds": 3.0,
    }
    assert row["metrics"]["student"] == {"AP": 0.25, "AP_small": 0.125}
    assert row["metrics"]["teacher"] == {
        "AP": 0.5,
        "AP_small": -1.0,
        "AP_medium": 0.25,
        "AP_large": 0.75,
    }
    assert row["creator_email"] == team.email and row["attempt"] == 0
    other = rows[teacher_job["id"]]
    assert other["metrics"] is None
    assert other["spec_summary"] == {
        "student_arch": None,
        "teacher_arch": "fcos_resnet18_fpn",
        "preset": None,
        "lambda_kd": None,
        "lr": 0.001,
        "epochs": 12,
        "image_size": 96,
    }
    # The job's own page keeps the whole spec.
    full = client.get(f"{API}/jobs/{created['id']}", headers=team.headers).json()
    assert full["spec"]["distill"]["spatial"]["adapter"] == "learned"
    # The summary was stored with the row; a row from before revision 0007 has none, and the
    # list makes the same one from its spec.
    with session_factory() as s:
        stored = s.get(Job, created["id"])
        assert stored is not None and stored.summary == row["spec_summary"]
    set_job(session_factory, created["id"], summary=None)
    rows = {j["id"]: j for j in client.get(f"{API}/jobs", headers=team.headers).json()["data"]}
    assert rows[created["id"]]["spec_summary"] == row["spec_summary"]


def test_keyset_pages_follow_next_cursor_beside_offsets(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as s:
        ids = [
            repo.create_job(
                s,
                team_id=team.team_id,
                created_by=team.user_id,
                kind="teacher" if i % 2 else "distill",
                spec={"kind": "distill", "data": {"dataset_id": 1}},
                name=f"job {i}",
            ).id
            for i in range(7)
        ]
    with session_factory() as s:
        tied = repo.get_job(s, team_id=team.team_id, job_id=ids[3]).created_at  # type: ignore[union-attr]
    for job_id in (ids[2], ids[4]):  # three jobs created at one instant: ordered by id
        set_job(session_factory, job_id, created_at=tied)
    newest_first = ids[::-1]

    def page(query: str) -> dict[str, Any]:
        response = client.get(f"{API}/jobs?{query}", headers=team.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    seen: list[int] = []
    body = page("limit=3")
    while True:
        assert body["count"] == 7
        seen += [j["id"] for j in body["data"]]
        if body["next_cursor"] is None:
            break
        body = page(f"limit=3&after={body['next_cursor']}")
    assert seen == newest_first
    # Offsets give the same pages; a cursor taken from an offset page continues it.
    assert [j["id"] for j in page("limit=3&offset=3")["data"]] == newest_first[3:6]
    cursor = page("limit=2&offset=1")["next_cursor"]
    assert [j["id"] for j in page(f"limit=2&after={cursor}")["data"]] == newest_first[3:5]
    # A job added meanwhile does not shift a keyset page (it would shift an offset page).
    cursor = page("limit=3")["next_cursor"]
    with session_scope(session_factory) as s:
        repo.create_job(
            s, team_id=team.team_id, created_by=None, kind="distill", spec={}, name="newer"
        )
    after = page(f"limit=3&after={cursor}")
    assert [j["id"] for j in after["data"]] == newest_first[3:6] and after["count"] == 8
    # Filters apply to keyset pages too.
    teachers = page(f"kind=teacher&limit=5&after={cursor}")
    assert [j["id"] for j in teachers["data"]] == [i for i in newest_first[3:] if ids.index(i) % 2]

    def b64(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    for bad in (
        "nope",
        b64("not a cursor"),
        b64("2024-01-01T00:00:00+00:00|0"),  # no such id
        b64("2024-01-01T00:00:00|5"),  # no timezone
        "x" * 201,
    ):
        refused = client.get(f"{API}/jobs?after={bad}", headers=team.headers)
        assert refused.status_code == 422, bad
        assert refused.json()["detail"][0]["loc"] == ["query", "after"]

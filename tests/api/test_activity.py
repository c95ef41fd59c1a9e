"""Team history over REST: activity by user, members, the creator filter, staged metrics."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def test_activity_names_who_submitted_and_who_canceled(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    colleague = team.add_member("member")
    with session_scope(session_factory) as s:
        job = repo.create_job(
            s, team_id=team.team_id, created_by=team.user_id, kind="distill", spec={},
            name="act-job",
        )  # fmt: skip
        job_id = job.id
    # The colleague cancels it through the API: the history says who.
    response = client.post(f"{API}/jobs/{job_id}/cancel", headers=colleague.headers)
    assert response.status_code == 200, response.text
    body = client.get(f"{API}/activity", headers=team.headers).json()
    assert [(a["action"], a["subject_id"], a["user_email"]) for a in body["data"]] == [
        ("canceled", job_id, colleague.email),
        ("submitted", job_id, team.email),
    ]
    mine = client.get(f"{API}/activity?user=me", headers=team.headers).json()
    assert [a["action"] for a in mine["data"]] == ["submitted"]
    theirs = client.get(f"{API}/activity?user={colleague.user_id}", headers=team.headers).json()
    assert [a["action"] for a in theirs["data"]] == ["canceled"]
    bad = client.get(f"{API}/activity?user=eve", headers=team.headers)
    assert bad.status_code == 422 and "user" in bad.text
    members = client.get(f"{API}/members", headers=team.headers).json()
    assert {m["email"] for m in members["data"]} == {team.email, colleague.email}
    # Filter the job list by its creator, server-side.
    by_colleague = client.get(f"{API}/jobs?created_by={colleague.user_id}", headers=team.headers)
    assert by_colleague.json()["count"] == 0
    by_me = client.get(f"{API}/jobs?created_by=me", headers=team.headers).json()
    assert [row["id"] for row in by_me["data"]] == [job_id]


def test_another_team_sees_none_of_this_activity(
    client: TestClient,
    team: TeamContext,
    team_factory: Callable[..., TeamContext],
    session_factory: sessionmaker[Session],
) -> None:
    rival = team_factory()
    with session_scope(session_factory) as s:
        repo.create_job(
            s, team_id=team.team_id, created_by=team.user_id, kind="distill", spec={}, name="x"
        )
    body = client.get(f"{API}/activity", headers=rival.headers).json()
    assert body["data"] == []
    members = client.get(f"{API}/members", headers=rival.headers).json()
    assert [m["email"] for m in members["data"]] == [rival.email]


def test_metric_points_come_with_stage_and_global_step(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as s:
        job = repo.create_job(
            s, team_id=team.team_id, created_by=team.user_id, kind="distill", spec={}
        )
        points = [
            {"name": "loss/total", "value": 2.0, "step": 1, "stage": "distill"},
            {"name": "loss/total", "value": 1.5, "step": 2, "stage": "distill"},
            {"name": "loss/total", "value": 1.0, "step": 1, "stage": "finetune"},
            {"name": "lr", "value": 0.1, "step": 1},  # an old point: reads as the job's kind
        ]
        repo.add_metric_points(s, job_id=job.id, points=points)
        job_id = job.id
    series = client.get(f"{API}/jobs/{job_id}/metrics", headers=team.headers).json()["series"]
    loss = series["loss/total"]
    assert [(p["stage"], p["step"], p["global_step"]) for p in loss] == [
        ("distill", 1, 1),
        ("distill", 2, 2),
        ("finetune", 1, 3),
    ]
    assert series["lr"][0]["stage"] == "distill"

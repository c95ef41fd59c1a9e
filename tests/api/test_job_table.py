"""The job list as a run table: server-side sort and metric filters, tags and notes.

Both backends (the `db_url` fixture runs each test on SQLite and on PostgreSQL); the list
stays one statement for the page whatever the sort and filters.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from store.models import Job
from tests.api.test_round_trips import counted
from tests.platform_fixtures import TeamContext

API = "/api/v1"
# name -> the student's AP_small (None: no metrics yet).
SEEDED: dict[str, float | None] = {"a": 0.30, "b": 0.05, "c": None, "d": 0.12, "e": -1.0}


@pytest.fixture
def seeded(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> dict[str, int]:
    """Five jobs with known AP_small; returns their ids by name."""
    ids: dict[str, int] = {}
    with session_scope(session_factory) as s:
        for name, small in SEEDED.items():
            job = repo.create_job(
                s,
                team_id=team.team_id,
                created_by=team.user_id,
                kind="distill",
                spec={"kind": "distill", "data": {"dataset_id": 1}},
                name=name,
            )
            if small is not None:
                metrics = {"student": {"AP": 0.5 - 0.01 * len(ids), "AP_small": small}}
                s.execute(update(Job).where(Job.id == job.id).values(metrics=metrics))
            ids[name] = job.id
    return ids


def _names(client: TestClient, team: TeamContext, query: str) -> list[str]:
    response = client.get(f"{API}/jobs?{query}", headers=team.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return [row["name"] for row in body["data"]]


def test_sort_by_a_metric_either_way_with_missing_figures_last(
    client: TestClient, team: TeamContext, seeded: dict[str, int]
) -> None:
    assert _names(client, team, "sort=-metric:AP_small") == ["a", "d", "b", "e", "c"]
    assert _names(client, team, "sort=metric:AP_small") == ["e", "b", "d", "a", "c"]
    assert _names(client, team, "sort=name") == ["a", "b", "c", "d", "e"]
    assert _names(client, team, "sort=-name&limit=2&offset=1") == ["d", "c"]


def test_metric_bounds_filter_on_the_server_and_count_what_they_keep(
    client: TestClient, team: TeamContext, seeded: dict[str, int]
) -> None:
    response = client.get(f"{API}/jobs?min_ap_small=0.1&limit=1", headers=team.headers)
    body = response.json()
    assert body["count"] == 2 and [r["name"] for r in body["data"]] == ["d"]
    assert _names(client, team, "min_ap_small=0.04&max_ap_small=0.2&sort=name") == ["b", "d"]


def test_sort_and_filter_stay_one_statement(
    client: TestClient, team: TeamContext, seeded: dict[str, int]
) -> None:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    _names(client, team, "limit=1")  # the token's use is noted once, outside the count
    with counted(engine) as counts:
        assert _names(client, team, "sort=-metric:AP_small&min_ap_small=0.01&tag=x") == []
    assert len(counts.statements) <= 2, counts.statements


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=metric:loss", "sort"),
        ("sort=spec", "sort"),
        ("min_ap_small=12", "min_ap_small"),
        ("min_recall=0.1", "min_recall"),
        ("sort=name&after=abc", "after"),
        ("tag=has space", "tag"),
    ],
)
def test_bad_sort_or_bound_is_a_422_naming_the_parameter(
    client: TestClient, team: TeamContext, query: str, field: str
) -> None:
    response = client.get(f"{API}/jobs?{query}", headers=team.headers)
    assert response.status_code == 422
    assert field in response.text


def test_tags_and_note_are_set_shown_and_filtered(
    client: TestClient, team: TeamContext, seeded: dict[str, int]
) -> None:
    job_id = seeded["b"]
    response = client.patch(
        f"{API}/jobs/{job_id}",
        json={"tags": ["baseline", "p2-only", "baseline"], "note": "lr too high?"},
        headers=team.headers,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["tags"], response.json()["note"]) == (
        ["baseline", "p2-only"],
        "lr too high?",
    )
    assert _names(client, team, "tag=baseline") == ["b"]
    # "base" is not "baseline": a tag matches whole.
    assert _names(client, team, "tag=base") == []
    row = client.get(f"{API}/jobs?tag=p2-only", headers=team.headers).json()["data"][0]
    assert (row["tags"], row["note"]) == (["baseline", "p2-only"], "lr too high?")
    # The note alone leaves the tags.
    client.patch(f"{API}/jobs/{job_id}", json={"note": ""}, headers=team.headers)
    job = client.get(f"{API}/jobs/{job_id}", headers=team.headers).json()
    assert (job["tags"], job["note"]) == (["baseline", "p2-only"], "")


def test_a_bad_tag_is_a_422_and_another_teams_job_a_404(
    client: TestClient, team: TeamContext, seeded: dict[str, int], team_factory: Any
) -> None:
    job_id = seeded["a"]
    bad = client.patch(f"{API}/jobs/{job_id}", json={"tags": ['a"b']}, headers=team.headers)
    assert bad.status_code == 422 and "tags" in bad.text
    nul = client.patch(f"{API}/jobs/{job_id}", json={"note": "a\u0000b"}, headers=team.headers)
    assert nul.status_code == 422 and "NUL" in nul.text
    other: TeamContext = team_factory()
    assert (
        client.patch(f"{API}/jobs/{job_id}", json={"note": "x"}, headers=other.headers).status_code
        == 404
    )

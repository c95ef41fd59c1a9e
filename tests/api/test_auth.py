"""Authentication and team context: tokens, login, /me, X-Team-Id and roles."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.platform_fixtures import TeamContext

API = "/api/v1"


def test_missing_or_invalid_token_is_401_json(client: TestClient) -> None:
    missing = client.get(f"{API}/jobs")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in missing.json()["detail"]
    invalid = client.get(f"{API}/me", headers={"Authorization": "Bearer dst_not-a-token"})
    assert invalid.status_code == 401
    assert invalid.json()["detail"] == "invalid or revoked token"
    # The job list looks its team up in its own thread: the same answers.
    bad = {"Authorization": "Bearer dst_not-a-token"}
    listed = client.get(f"{API}/jobs", headers=bad, params={"state": "nonsense"})
    assert listed.status_code == 401 and listed.json()["detail"] == "invalid or revoked token"
    anonymous = client.get(f"{API}/jobs", params={"limit": "many"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"


def test_login_issues_a_token_that_identifies_the_user(
    client: TestClient, team: TeamContext
) -> None:
    wrong = client.post(f"{API}/auth/login", json={"email": team.email, "password": "nope"})
    assert wrong.status_code == 401
    ok = client.post(
        f"{API}/auth/login", json={"email": team.email.upper(), "password": team.password}
    )
    assert ok.status_code == 200
    token = ok.json()["token"]
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == team.email
    assert body["teams"] == [{"id": team.team_id, "name": team.name, "role": "admin"}]


def test_team_header_is_checked_and_viewers_only_read(
    client: TestClient, team_factory: Callable[..., TeamContext]
) -> None:
    mine = team_factory(role="admin")
    other = team_factory(role="admin")
    foreign = client.get(
        f"{API}/jobs",
        headers={"Authorization": f"Bearer {mine.token}", "X-Team-Id": str(other.team_id)},
    )
    assert foreign.status_code == 403
    assert foreign.json()["detail"][0]["loc"] == ["header", "X-Team-Id"]
    garbage = client.get(f"{API}/jobs", headers={**mine.headers, "X-Team-Id": "abc"})
    assert garbage.status_code == 422

    viewer = mine.add_member(role="viewer")
    headers = {"Authorization": f"Bearer {viewer.token}"}  # default team: their only one
    listed = client.get(f"{API}/jobs", headers=headers).json()
    assert listed == {"data": [], "count": 0, "next_cursor": None}
    denied = client.post(f"{API}/jobs", headers=headers, json={"spec": {}})
    assert denied.status_code == 403
    assert "viewer" in denied.json()["detail"]

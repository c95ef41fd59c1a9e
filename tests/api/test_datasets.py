"""Dataset uploads: streamed to the blob store, sniffed, size-capped, enqueued; team-scoped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store.models import Dataset
from tests.api.broker_probe import Broker
from tests.api.factories import MAX_UPLOAD_BYTES, row_count, tiny_tar_gz, tiny_zip
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def blob_files(root: Path) -> list[Path]:
    """Every file under the local blob root."""
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_stores_blob_creates_row_and_enqueues_validation(
    client: TestClient, team: TeamContext, broker: Broker, blob_root: Path
) -> None:
    data = tiny_zip()
    response = client.post(
        f"{API}/datasets",
        headers=team.headers,
        files={"file": ("my-data.zip", data, "application/zip")},
        data={"format": "coco"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "validating"
    assert body["name"] == "my-data"
    assert body["format"] == "coco"
    assert body["size_bytes"] == len(data)
    stored = blob_root / f"datasets/{team.team_id}/{body['id']}/archive.zip"
    assert stored.read_bytes() == data
    assert ("distillery.validate_dataset", [body["id"]]) in broker.enqueued("default")

    tgz = client.post(
        f"{API}/datasets",
        headers=team.headers,
        files={"file": ("other.tar.gz", tiny_tar_gz())},
        data={"name": "second"},
    )
    assert tgz.status_code == 202, tgz.text
    assert tgz.json()["format"] == "auto"
    listed = client.get(f"{API}/datasets?limit=1", headers=team.headers).json()
    assert listed["count"] == 2
    assert [d["name"] for d in listed["data"]] == ["second"]
    one = client.get(f"{API}/datasets/{body['id']}", headers=team.headers).json()
    assert one["statistics"] is None and one["errors"] is None


def test_too_large_upload_is_413_naming_file_and_leaves_nothing(
    client: TestClient,
    team: TeamContext,
    blob_root: Path,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    big = b"PK\x03\x04" + b"\0" * MAX_UPLOAD_BYTES
    response = client.post(
        f"{API}/datasets", headers=team.headers, files={"file": ("big.zip", big)}
    )
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert row_count(session_factory, Dataset, team.team_id) == 0
    assert blob_files(blob_root) == []
    assert list((tmp_path / "data" / "tmp").glob("*")) == []


def test_non_archive_is_refused_naming_file(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session], blob_root: Path
) -> None:
    response = client.post(
        f"{API}/datasets",
        headers=team.headers,
        files={"file": ("data.zip", b"just some text, not a zip", "application/zip")},
    )
    assert response.status_code == 415
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "file"]
    assert "data.zip" in error["msg"] and "not a zip or tar" in error["msg"]
    bad_format = client.post(
        f"{API}/datasets",
        headers=team.headers,
        files={"file": ("d.zip", tiny_zip())},
        data={"format": "yolo"},
    )
    assert bad_format.status_code == 422
    assert bad_format.json()["detail"][0]["loc"] == ["body", "format"]
    no_file = client.post(f"{API}/datasets", headers=team.headers, data={"name": "x"})
    assert no_file.status_code == 422
    assert row_count(session_factory, Dataset, team.team_id) == 0
    assert blob_files(blob_root) == []


def test_other_teams_dataset_is_404_and_delete_frees_the_blob(
    client: TestClient, team_factory: Callable[..., TeamContext], blob_root: Path
) -> None:
    owner = team_factory()
    stranger = team_factory()
    created = client.post(
        f"{API}/datasets", headers=owner.headers, files={"file": ("a.zip", tiny_zip())}
    ).json()
    url = f"{API}/datasets/{created['id']}"
    assert client.get(url, headers=stranger.headers).status_code == 404
    assert client.delete(url, headers=stranger.headers).status_code == 404
    assert blob_files(blob_root) != []

    member = owner.add_member(role="member")
    not_theirs = client.delete(url, headers={"Authorization": f"Bearer {member.token}"})
    assert not_theirs.status_code == 403

    assert client.delete(url, headers=owner.headers).status_code == 204
    assert client.get(url, headers=owner.headers).status_code == 404
    assert blob_files(blob_root) == []

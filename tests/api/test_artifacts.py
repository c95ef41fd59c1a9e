"""Artifact downloads: streamed from a local store, a presigned redirect on S3."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import urlparse

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from tests.api.factories import distill_spec, make_dataset, make_teacher, tiny_zip
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def job_with_artifact(
    client: TestClient, team: TeamContext, factory: sessionmaker[Session], key_of: str
) -> int:
    """A job of the team with a `report` artifact row at `jobs/<id>/report.md`."""
    spec = distill_spec(make_dataset(factory, team), make_teacher(factory, team))
    job_id: int = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec}).json()["id"]
    with session_scope(factory) as s:
        repo.add_artifact(
            s, job_id=job_id, kind="report", name="report.md", key=key_of.format(job_id=job_id),
            size_bytes=7, content_type="text/markdown",
        )
    return job_id


def test_local_download_streams_the_file(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session], blob_root: Path
) -> None:
    job_id = job_with_artifact(client, team, session_factory, "jobs/{job_id}/report.md")
    (blob_root / f"jobs/{job_id}").mkdir(parents=True)
    (blob_root / f"jobs/{job_id}/report.md").write_bytes(b"# Hello")
    listed = client.get(f"{API}/jobs/{job_id}/artifacts", headers=team.headers).json()
    assert [(a["name"], a["kind"]) for a in listed["data"]] == [("report.md", "report")]
    response = client.get(f"{API}/jobs/{job_id}/artifacts/report.md", headers=team.headers)
    assert response.status_code == 200
    assert response.content == b"# Hello"
    assert response.headers["content-type"].startswith("text/markdown")
    assert 'filename="report.md"' in response.headers["content-disposition"]
    missing = client.get(f"{API}/jobs/{job_id}/artifacts/nope.onnx", headers=team.headers)
    assert missing.status_code == 404


def test_s3_download_redirects_to_a_presigned_url(
    s3_app_client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    client = s3_app_client
    job_id = job_with_artifact(client, team, session_factory, "jobs/{job_id}/report.md")
    blobs = client.app.state.blobs  # type: ignore[attr-defined]
    blobs.put_stream(f"jobs/{job_id}/report.md", io.BytesIO(b"# Hello"))
    response = client.get(
        f"{API}/jobs/{job_id}/artifacts/report.md", headers=team.headers, follow_redirects=False
    )
    assert response.status_code == 307
    location = urlparse(response.headers["location"])
    assert location.path == f"/{blobs.bucket}/jobs/{job_id}/report.md"
    assert "X-Amz-Signature" in location.query

    # Uploads go to the bucket too.
    uploaded = client.post(
        f"{API}/datasets", headers=team.headers, files={"file": ("d.zip", tiny_zip())}
    ).json()
    assert blobs.exists(f"datasets/{team.team_id}/{uploaded['id']}/archive.zip")

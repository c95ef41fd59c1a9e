"""Teacher uploads: checkpoint type and declared architecture are checked before storing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store.models import Teacher
from tests.api.broker_probe import Broker
from tests.api.factories import row_count, tiny_safetensors
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def test_upload_teacher_stores_and_enqueues_validation(
    client: TestClient, team: TeamContext, broker: Broker, blob_root: Path
) -> None:
    data = tiny_safetensors()
    response = client.post(
        f"{API}/teachers",
        headers=team.headers,
        files={"file": ("big-teacher.safetensors", data)},
        data={"arch": "retinanet_resnet18_fpn", "fpn_channels": "64"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["name"], body["arch"], body["fpn_channels"]) == (
        "big-teacher",
        "retinanet_resnet18_fpn",
        64,
    )
    assert body["status"] == "validating"
    key = f"teachers/{team.team_id}/{body['id']}/checkpoint.safetensors"
    assert (blob_root / key).read_bytes() == data
    assert ("distillery.validate_teacher", [body["id"]]) in broker.enqueued("default")
    listed = client.get(f"{API}/teachers", headers=team.headers).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == body["id"]
    assert client.delete(f"{API}/teachers/{body['id']}", headers=team.headers).status_code == 204
    assert not (blob_root / key).exists()


def test_invalid_arch_and_checkpoint_are_refused_by_field(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    bad_arch = client.post(
        f"{API}/teachers",
        headers=team.headers,
        files={"file": ("t.safetensors", tiny_safetensors())},
        data={"arch": "yolov8x"},
    )
    assert bad_arch.status_code == 422
    error = bad_arch.json()["detail"][0]
    assert error["loc"] == ["body", "arch"]
    assert "yolov8x" in error["msg"] and "retinanet_resnet50_fpn" in error["msg"]

    bad_channels = client.post(
        f"{API}/teachers",
        headers=team.headers,
        files={"file": ("t.safetensors", tiny_safetensors())},
        data={"arch": "retinanet_resnet18_fpn", "fpn_channels": "4"},
    )
    assert bad_channels.json()["detail"][0]["loc"] == ["body", "fpn_channels"]

    wrong_suffix = client.post(
        f"{API}/teachers",
        headers=team.headers,
        files={"file": ("t.ckpt", tiny_safetensors())},
        data={"arch": "retinanet_resnet18_fpn"},
    )
    assert wrong_suffix.status_code == 422
    assert wrong_suffix.json()["detail"][0]["loc"] == ["body", "file"]

    not_a_checkpoint = client.post(
        f"{API}/teachers",
        headers=team.headers,
        files={"file": ("t.pt", b"hello, I am not a checkpoint")},
        data={"arch": "retinanet_resnet18_fpn"},
    )
    assert not_a_checkpoint.status_code == 415
    assert not_a_checkpoint.json()["detail"][0]["loc"] == ["body", "file"]
    assert row_count(session_factory, Teacher, team.team_id) == 0

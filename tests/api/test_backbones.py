"""Backbone weights uploads: stored, listed with the uploader, pickles refused, picked by id."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from store.models import Backbone
from tests.api.broker_probe import Broker
from tests.api.factories import distill_spec, make_dataset, make_teacher, tiny_safetensors
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def tiny_pth(**tensors: torch.Tensor) -> bytes:
    """A torch.save file (zip format) of a small state dict."""
    buffer = io.BytesIO()
    torch.save(tensors or {"conv1.weight": torch.ones(2, 2)}, buffer)
    return buffer.getvalue()


class _Payload:
    """Unpickling this would create a file; the file's absence proves nothing ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _upload(client: TestClient, team: TeamContext, name: str, data: bytes, **fields: str) -> Any:
    return client.post(
        f"{API}/backbones",
        headers=team.headers,
        files={"file": (name, data)},
        data={"arch": "resnet18", **fields},
    )


def _count(factory: sessionmaker[Session], team_id: int) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).where(Backbone.team_id == team_id)) or 0)


def test_upload_stores_enqueues_and_lists_with_the_uploader(
    client: TestClient,
    team: TeamContext,
    team_factory: Callable[..., TeamContext],
    broker: Broker,
    blob_root: Path,
) -> None:
    data = tiny_pth()
    response = _upload(client, team, "resnet18-f37072fd.pth", data)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["name"], body["arch"], body["status"]) == (
        "resnet18-f37072fd",
        "resnet18",
        "validating",
    )
    assert body["creator_email"] == team.email and body["created_by"] == team.user_id
    assert body["info"] == {"file": "resnet18-f37072fd.pth"}
    key = f"backbones/{team.team_id}/{body['id']}/weights.pth"
    assert (blob_root / key).read_bytes() == data
    assert ("distillery.validate_backbone", [body["id"]]) in broker.enqueued("default")
    second = _upload(client, team, "b.safetensors", tiny_safetensors(), arch="mobilenet_v2")
    assert second.status_code == 202, second.text

    listed = client.get(f"{API}/backbones", headers=team.headers).json()
    assert listed["count"] == 2 and [r["id"] for r in listed["data"]] == [
        second.json()["id"],
        body["id"],
    ]
    assert listed["data"][1]["creator_email"] == team.email
    only = client.get(f"{API}/backbones", headers=team.headers, params={"arch": "resnet18"})
    assert [r["id"] for r in only.json()["data"]] == [body["id"]]
    bad_filter = client.get(f"{API}/backbones", headers=team.headers, params={"arch": "vgg"})
    assert bad_filter.status_code == 422
    assert bad_filter.json()["detail"][0]["loc"] == ["query", "arch"]
    one = client.get(f"{API}/backbones/{body['id']}", headers=team.headers)
    assert one.status_code == 200 and one.json()["sha256"] == body["sha256"]
    other = team_factory()
    assert client.get(f"{API}/backbones/{body['id']}", headers=other.headers).status_code == 404
    assert client.get(f"{API}/backbones", headers=other.headers).json()["count"] == 0


def test_bad_fields_and_pickled_payloads_are_refused_naming_field_and_file(
    client: TestClient,
    team: TeamContext,
    session_factory: sessionmaker[Session],
    blob_root: Path,
    tmp_path: Path,
) -> None:
    bad_arch = _upload(client, team, "w.pth", tiny_pth(), arch="vgg16")
    assert bad_arch.status_code == 422
    error = bad_arch.json()["detail"][0]
    assert (
        error["loc"] == ["body", "arch"] and "vgg16" in error["msg"] and "resnet18" in error["msg"]
    )
    suffix = _upload(client, team, "w.ckpt", tiny_pth())
    assert suffix.status_code == 422 and suffix.json()["detail"][0]["loc"] == ["body", "file"]

    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.ones(1), "x": _Payload(marker)}, buffer)
    payloads = {
        "evil.pth": buffer.getvalue(),  # torch.save of an object with a __reduce__ (zip format)
        "plain.pt": pickle.dumps({"w": _Payload(marker)}, protocol=2),  # a plain pickle
    }
    for name, data in payloads.items():
        response = _upload(client, team, name, data)
        assert response.status_code == 422, (name, response.text)
        (detail,) = response.json()["detail"]
        assert detail["loc"] == ["body", "file"]
        assert detail["msg"].startswith(f"{name!r}: refused: it holds pickled Python objects")
        assert "system" in detail["msg"] and "nothing in it was run" in detail["msg"]
    # A zip without torch's pickle is no torch file at all.
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    not_torch = _upload(client, team, "w.pth", archive.getvalue())
    assert not_torch.status_code == 415 and "'w.pth'" in not_torch.json()["detail"][0]["msg"]
    assert not marker.exists()
    assert _count(session_factory, team.team_id) == 0
    assert not (blob_root / "backbones").exists()


def _backbone(
    factory: sessionmaker[Session], team: TeamContext, arch: str, status: str = "ready"
) -> int:
    with session_scope(factory) as s:
        row = repo.create_backbone(
            s,
            team_id=team.team_id,
            created_by=team.user_id,
            name=arch,
            arch=arch,
            weights_key=f"backbones/{team.team_id}/x/weights.pth",
        )
        if status != "validating":
            repo.set_backbone_validation(s, backbone_id=row.id, status=status)
        return row.id


@pytest.fixture
def ids(
    session_factory: sessionmaker[Session], team: TeamContext, team_factory: Callable[..., Any]
) -> dict[str, int]:
    """A ready dataset and teacher, and backbones: ready ones, a validating one, another team's."""
    return {
        "dataset": make_dataset(session_factory, team),
        "teacher": make_teacher(session_factory, team),
        "mobilenet_v2": _backbone(session_factory, team, "mobilenet_v2"),
        "resnet18": _backbone(session_factory, team, "resnet18"),
        "validating": _backbone(session_factory, team, "mobilenet_v2", status="validating"),
        "foreign": _backbone(session_factory, team_factory(), "mobilenet_v2"),
    }


def test_a_spec_picks_backbones_checked_for_team_status_and_arch(
    client: TestClient, team: TeamContext, ids: dict[str, int]
) -> None:
    def submit(student: int | None, teacher: int | None = None) -> Any:
        spec = distill_spec(ids["dataset"], ids["teacher"])
        spec["student"]["backbone_id"] = student
        spec["teacher"]["backbone_id"] = teacher
        return client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})

    loc = ["body", "spec", "student", "backbone_id"]
    for backbone, words in (
        (
            ids["resnet18"],
            "holds resnet18 weights but student.arch retinanet_mobilenet_v2_fpn "
            "is built on mobilenet_v2",
        ),
        (ids["validating"], "is validating, not ready"),
        (ids["foreign"], f"backbone {ids['foreign']} not found"),
        (2**40, "is not an id"),
    ):
        response = submit(backbone)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == loc and words in error["msg"], error
    wrong_teacher = submit(ids["mobilenet_v2"], ids["mobilenet_v2"])
    (error,) = wrong_teacher.json()["detail"]
    assert error["loc"] == ["body", "spec", "teacher", "backbone_id"]
    assert "teacher.arch retinanet_resnet18_fpn is built on resnet18" in error["msg"]

    accepted = submit(ids["mobilenet_v2"], ids["resnet18"])
    assert accepted.status_code == 201, accepted.text
    spec = accepted.json()["spec"]
    assert spec["student"]["backbone_id"] == ids["mobilenet_v2"]
    assert spec["teacher"]["backbone_id"] == ids["resnet18"]
    # A teacher-training job starts its teacher from uploaded weights too.
    teacher_job = {
        "kind": "teacher",
        "data": {"dataset_id": ids["dataset"], "image_size": 64},
        "teacher": {"arch": "fcos_resnet18_fpn", "backbone_id": ids["resnet18"]},
    }
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": teacher_job})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["teacher"]["backbone_id"] == ids["resnet18"]

"""Uploaded weights on the embedded platform: the API takes the file, the worker (run in this
process) checks it and runs the job. Backbone weights start a student; a torchvision teacher
uploads as saved and distils (the other torchvision archs: tests/core/test_torchvision_teachers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from core.spec import DistillSpec, ablation_distill
from store import repositories as repo
from store.db import session_scope
from store.settings import Settings
from tests.api.broker_probe import Broker
from tests.core.test_torchvision_teachers import quick_latency, torchvision_state_dict
from tests.platform_fixtures import TeamContext
from tests.worker.harness import dataset_categories, dataset_zip
from worker.context import WorkerContext, build_context
from worker.runner import execute_job
from worker.validation import validate_backbone, validate_dataset, validate_teacher

API = "/api/v1"
pytestmark = pytest.mark.usefixtures("quick_latency")  # 1 timed run per model, not 10
__all__ = ["quick_latency"]
TEACHER_ARCH = "torchvision_fasterrcnn_mobilenet_v3_large_fpn"


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """The embedded deployment only: these tests run jobs, once is enough."""
    return sqlite_url


@pytest.fixture
def settings(db_url: str, broker: Broker, tmp_path: Path) -> Settings:
    """The API tests' settings with room for real weights files (a detector is ~80 MB)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        broker_url=broker.url,
        job_queue=broker.job_queue,
        max_upload_bytes=256 * 1024 * 1024,
    )


@pytest.fixture
def worker(settings: Settings) -> Iterator[WorkerContext]:
    """The worker's context on the same database and blob store, in this process."""
    ctx = build_context(settings)
    yield ctx
    ctx.close()


def _upload(client: TestClient, team: TeamContext, resource: str, path: Path, **fields: str) -> Any:
    with path.open("rb") as fh:
        response = client.post(
            f"{API}/{resource}", headers=team.headers, files={"file": (path.name, fh)}, data=fields
        )
    assert response.status_code == 202, response.text
    return response.json()


def _dataset(client: TestClient, team: TeamContext, worker: WorkerContext, tmp: Path) -> Any:
    archive = dataset_zip(tmp, images=4)
    row = _upload(client, team, "datasets", archive, format="coco")
    assert validate_dataset(worker, row["id"]) == "ready"
    return row["id"], dataset_categories(archive)


def _schedule(**overrides: Any) -> dict[str, Any]:
    return {
        "epochs": 1,
        "max_steps_per_epoch": 1,
        "warmup_steps": 0,
        "device": "cpu",
        "amp": False,
        "eval_every": 100,
        **overrides,
    }


def _run(client: TestClient, team: TeamContext, worker: WorkerContext, spec: dict[str, Any]) -> Any:
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert execute_job(worker, job_id) == "succeeded", (
        client.get(f"{API}/jobs/{job_id}", headers=team.headers).json().get("error")
    )
    return job_id


def test_uploaded_imagenet_weights_are_checked_and_start_the_student(
    client: TestClient, team: TeamContext, worker: WorkerContext, tmp_path: Path
) -> None:
    imagenet = torchvision.models.mobilenet_v2(weights=None).state_dict()
    good = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(imagenet, good)
    row = _upload(client, team, "backbones", good, arch="mobilenet_v2")
    assert validate_backbone(worker, row["id"]) == "ready"
    ready = client.get(f"{API}/backbones/{row['id']}", headers=team.headers).json()
    assert ready["status"] == "ready" and ready["errors"] is None
    assert ready["info"]["file"] == good.name and ready["info"]["ignored"] > 0

    wrong = tmp_path / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    bad = _upload(client, team, "backbones", wrong, arch="mobilenet_v2")
    assert validate_backbone(worker, bad["id"]) == "invalid"
    invalid = client.get(f"{API}/backbones/{bad['id']}", headers=team.headers).json()
    (error,) = invalid["errors"]
    assert error["file"] == wrong.name
    assert error["message"].startswith(f"{wrong.name}: weights do not match the architecture")
    assert "missing keys: features.0.0.weight" in error["message"] and "conv1.weight" in str(error)
    assert str(worker.work_dir) not in str(error)

    dataset_id, _ = _dataset(client, team, worker, tmp_path)
    spec = {
        "kind": "distill",
        "data": {"dataset_id": dataset_id, "image_size": 64, "batch_size": 1, "max_val_images": 1},
        "teacher": {"arch": "retinanet_resnet18_fpn"},
        "student": {
            "arch": "retinanet_mobilenet_v2_fpn",
            "fpn_channels": 16,
            "backbone_id": row["id"],
        },
        "distill": ablation_distill(DistillSpec(), "no_kd").model_dump(mode="json"),
        "schedule": _schedule(epochs=0),  # no step: the student is as it started
    }
    # A row written around the API (the runner checks again): invalid weights fail the job.
    with session_scope(worker.sessions) as session:
        refused = repo.create_job(
            session,
            team_id=team.team_id,
            created_by=team.user_id,
            kind="distill",
            spec={**spec, "student": {**spec["student"], "backbone_id": bad["id"]}},
            dataset_id=dataset_id,
        ).id
    assert execute_job(worker, refused) == "failed"
    failed = client.get(f"{API}/jobs/{refused}", headers=team.headers).json()
    assert failed["error"] == f"student.backbone_id: backbone {bad['id']} is invalid, not ready"

    job_id = _run(client, team, worker, spec)
    artifacts = client.get(f"{API}/jobs/{job_id}/artifacts", headers=team.headers).json()
    (student,) = [a for a in artifacts["data"] if a["kind"] == "student_safetensors"]
    download = client.get(f"{API}/jobs/{job_id}/artifacts/{student['name']}", headers=team.headers)
    assert download.status_code == 200
    (tmp_path / "student.safetensors").write_bytes(download.content)
    weights = load_file(str(tmp_path / "student.safetensors"))
    body = {
        k.removeprefix("backbone.body."): v
        for k, v in weights.items()
        if k.startswith("backbone.body.")
    }
    assert len(body) > 100
    for key, value in body.items():
        assert torch.equal(value, imagenet[f"features.{key}"]), key


def test_a_torchvision_teacher_uploads_as_saved_and_distils(
    client: TestClient, team: TeamContext, worker: WorkerContext, tmp_path: Path
) -> None:
    dataset_id, categories = _dataset(client, team, worker, tmp_path)
    path = tmp_path / "fasterrcnn_mobilenet_v3_large_fpn.pth"
    torch.save(torchvision_state_dict(TEACHER_ARCH, num_classes=categories + 1), path)
    row = _upload(client, team, "teachers", path, arch=TEACHER_ARCH, fpn_channels="256")
    assert validate_teacher(worker, row["id"]) == "ready"
    teacher = client.get(f"{API}/teachers/{row['id']}", headers=team.headers).json()
    assert teacher["num_classes"] == categories + 1
    spec = {
        "kind": "distill",
        "data": {"dataset_id": dataset_id, "image_size": 64, "batch_size": 1, "max_val_images": 1},
        "teacher": {"teacher_id": row["id"]},
        "student": {"arch": "retinanet_mobilenet_v2_fpn", "fpn_channels": 16},
        "schedule": _schedule(),
    }
    job_id = _run(client, team, worker, spec)
    job = client.get(f"{API}/jobs/{job_id}", headers=team.headers).json()
    assert job["spec"]["teacher"]["arch"] == TEACHER_ARCH  # filled in from the upload
    assert set(job["metrics"]["distill/pairs"]) == {"p2", "p3", "p4", "p5"}
    assert job["metrics"]["efficiency"]["teacher"]["params"] > 1_000_000

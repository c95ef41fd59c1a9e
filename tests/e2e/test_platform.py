"""End to end on a real API, a real Celery worker process, the database and the blob store.

Parametrised over the embedded deployment (SQLite, serverless broker, local folder) and the
team deployment (PostgreSQL, Redis, S3 on moto's server).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from cli.main import main as distillery
from tests.e2e.live import JOB_TIMEOUT, PASSWORD, Platform
from tests.worker.harness import (
    IMAGE_SIZE,
    STUDENT_ARCH,
    TEACHER_ARCH,
    TEACHER_FPN,
    teacher_file,
    wait_for,
)
from worker.celery_app import TASK_RUN_JOB, make_celery


class PickledPayload(torch.nn.Module):
    """A module: saving it pickles the class itself, which safe loading must refuse."""


def _spec_file(folder: Path, *, epochs: int, steps: int) -> Path:
    spec = {
        "kind": "distill",
        "data": {"path": "replaced-by-dataset-id", "image_size": IMAGE_SIZE, "batch_size": 2},
        "teacher": {"arch": TEACHER_ARCH, "fpn_channels": TEACHER_FPN},
        "student": {"arch": STUDENT_ARCH, "fpn_channels": 16},
        "schedule": {
            "epochs": epochs, "max_steps_per_epoch": steps, "warmup_steps": 0,
            "eval_every": 100, "device": "cpu", "amp": False,
        },
    }
    path = folder / f"spec-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _submit(platform: Platform, inputs: dict[str, int], *, epochs: int, steps: int) -> int:
    status, out = platform.cli(
        "submit", str(_spec_file(platform.tmp, epochs=epochs, steps=steps)),
        "--dataset", str(inputs["dataset"]), "--teacher", str(inputs["teacher"]),
    )
    assert status == 0, out
    return int(out.split()[1])


def test_job_runs_end_to_end_and_its_student_downloads(
    platform: Platform, inputs: dict[str, int]
) -> None:
    job_id = _submit(platform, inputs, epochs=1, steps=2)
    running = platform.wait_job(job_id, states=("running", "succeeded"))
    if running["state"] == "running":
        # A second delivery while this worker's lease is alive is dropped, not run twice.
        app = make_celery(platform.deployment.settings)
        assert app.tasks[TASK_RUN_JOB].apply(args=[job_id]).get() == "dropped"
        assert platform.get(f"/jobs/{job_id}")["attempt"] == 1

    status, out = platform.cli("follow", str(job_id))
    assert status == 0, out
    assert f"job {job_id} succeeded: AP " in out and "AP_small" in out

    job = platform.get(f"/jobs/{job_id}")
    assert job["state"] == "succeeded" and job["attempt"] == 1
    assert job["progress"]["step"] == job["progress"]["total_steps"] == 2
    assert "AP_small" in job["metrics"]["student"]
    series = platform.get(f"/jobs/{job_id}/metrics")["series"]
    assert {"loss/total", "kd/spatial/p2", "eval/AP"} <= set(series)

    names = {a["name"] for a in platform.get(f"/jobs/{job_id}/artifacts")["data"]}
    assert {"student.safetensors", "student.onnx", "metrics.json", "report.md"} <= names

    status, out = platform.cli("download", str(job_id), "--out", str(platform.tmp / "dl"))
    assert status == 0, out
    weights = load_file(str(platform.tmp / "dl" / f"job-{job_id}-student.safetensors"))
    assert weights and all(isinstance(t, torch.Tensor) for t in weights.values())

    status, out = platform.cli("jobs", "--state", "succeeded")
    assert status == 0
    assert any(line.split()[:1] == [str(job_id)] for line in out.splitlines())


def test_a_running_job_is_canceled(platform: Platform, inputs: dict[str, int]) -> None:
    job_id = _submit(platform, inputs, epochs=200, steps=2)

    def stepping() -> bool:
        job = platform.get(f"/jobs/{job_id}")
        assert job["state"] in ("queued", "running"), job
        return bool(job["progress"] and job["progress"]["step"] >= 1)

    wait_for(stepping, timeout=JOB_TIMEOUT, what="the job's first steps")
    response = platform.http.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    job = platform.wait_job(job_id, states=("canceled", "failed", "succeeded"))
    assert job["state"] == "canceled", job
    assert job["progress"]["step"] < job["progress"]["total_steps"]


def test_login_saves_a_token_the_other_commands_use(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("DISTILLERY_TOKEN", raising=False)
    monkeypatch.delenv("DISTILLERY_SERVER", raising=False)
    bad = distillery(["login", "--server", platform.api.url, "--email", platform.email,
                      "--password", "wrong"])  # fmt: skip
    assert bad == 1
    assert distillery(["login", "--server", platform.api.url, "--email", platform.email,
                       "--password", PASSWORD]) == 0  # fmt: skip
    saved = json.loads((tmp_path / "distillery" / "credentials.json").read_text())
    assert saved["server"] == platform.api.url and saved["token"].startswith("dst_")
    out = io.StringIO()
    with redirect_stdout(out):
        assert distillery(["jobs"]) == 0  # no flags: the saved server and token
    assert out.getvalue().startswith("ID")


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_bad_uploads_are_invalid_with_the_reason(
    platform: Platform, inputs: dict[str, int]
) -> None:
    tmp = platform.tmp
    good = (tmp / "dataset.zip").read_bytes()
    corrupt = tmp / "corrupt.zip"
    corrupt.write_bytes(good[: len(good) // 2])
    slip = _zip(tmp / "slip.zip", {"annotations/instances_train.json": b"{}", "../evil.txt": b"x"})
    pickled = tmp / "pickled.pt"
    torch.save(PickledPayload(), pickled)
    categories = json.loads(
        zipfile.ZipFile(tmp / "dataset.zip").read("annotations/instances_train.json")
    )["categories"]
    wrong = teacher_file(tmp / "resnet18.safetensors", num_classes=len(categories) + 1)

    corrupt_id = platform.upload("datasets", corrupt, name="corrupt", format="coco")["id"]
    slip_id = platform.upload("datasets", slip, name="slip", format="coco")["id"]
    # A pickle that imports more than a tensor state dict is refused at once (nothing stored).
    with pickled.open("rb") as fh:
        refused = platform.http.post(
            "/teachers",
            files={"file": (pickled.name, fh)},
            data={"name": "pickled", "arch": TEACHER_ARCH, "fpn_channels": str(TEACHER_FPN)},
        )
    assert refused.status_code == 422, refused.text
    assert "pickled.pt" in refused.text and "weights_only" not in refused.text
    wrong_id = platform.upload(
        "teachers", wrong, name="wrong", arch="fcos_resnet18_fpn", fpn_channels=str(TEACHER_FPN)
    )["id"]

    def errors(resource: str, row_id: int) -> str:
        row = platform.wait_status(resource, row_id)
        assert row["status"] == "invalid", row
        assert row["errors"]
        return json.dumps(row["errors"])

    corrupt_errors = errors("datasets", corrupt_id)
    assert "corrupt" in corrupt_errors or "not a zip or tar archive" in corrupt_errors
    assert "../evil.txt" in errors("datasets", slip_id)
    wrong_errors = errors("teachers", wrong_id)
    assert "checkpoint.safetensors" in wrong_errors
    (first,) = platform.get(f"/teachers/{wrong_id}")["errors"]
    assert first["missing"] and first["unexpected"], first

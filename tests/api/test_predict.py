"""`POST /jobs/{id}/predict`: a finished job's student on an uploaded image, and its errors.

The job's files are those a job writes (tests/core/predict/students.py: the pipeline's own
provenance metadata and ONNX export), stored in the app's blob store and recorded as the
worker records them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw
from sqlalchemy.orm import Session, sessionmaker

from api.predictors import StoredFile, StudentCache, StudentFiles
from cli import predict as cli_predict
from cli.main import main as distillery
from core.predict.loading import load_predictor
from core.predict.metadata import load_meta_file
from core.predict.onnx_model import OnnxPredictor
from core.predict.results import coco_records
from core.predict.slicing import SliceOptions
from store import repositories as repo
from store.blob_keys import job_artifact_key
from store.db import session_scope
from tests.api.factories import distill_spec, make_dataset, make_teacher, set_job
from tests.core.predict.students import ExportedStudent, export_student
from tests.platform_fixtures import TeamContext

API = "/api/v1"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportedStudent:
    """A tiny student's safetensors and ONNX, as a job writes them."""
    return export_student(tmp_path_factory.mktemp("student"))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _scene(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), (90, 110, 90))
    draw = ImageDraw.Draw(image)
    for i in range(12):
        x, y = (37 * i) % (width - 20), (23 * i) % (height - 20)
        draw.rectangle((x, y, x + 6 + i, y + 5 + i), fill=(40 * i % 256, 200, 255 - 20 * i))
    return image


@pytest.fixture
def photo() -> Image.Image:
    """A 120 x 90 random RGB picture."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def new_job(client: TestClient, team: TeamContext, factory: sessionmaker[Session]) -> int:
    """A queued distill job of the team (no student yet)."""
    spec = distill_spec(make_dataset(factory, team), make_teacher(factory, team))
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


def store_student(
    client: TestClient, factory: sessionmaker[Session], job_id: int, files: ExportedStudent
) -> None:
    """Put the student's files in the blob store and record them, as the worker does."""
    blobs = client.app.state.blobs  # type: ignore[attr-defined]
    with session_scope(factory) as s:
        for kind, path in (
            ("student_safetensors", files.safetensors),
            ("student_onnx", files.onnx),
        ):
            key = job_artifact_key(job_id, path.name)
            blobs.put_file(key, path)
            repo.add_artifact(
                s, job_id=job_id, kind=kind, name=path.name, key=key,
                size_bytes=path.stat().st_size,
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            )  # fmt: skip


@pytest.fixture
def finished_job(
    client: TestClient,
    team: TeamContext,
    session_factory: sessionmaker[Session],
    exported: ExportedStudent,
) -> int:
    """A succeeded distill job of the team with its student stored."""
    job_id = new_job(client, team, session_factory)
    store_student(client, session_factory, job_id, exported)
    set_job(session_factory, job_id, state="succeeded")
    return job_id


def _predict(
    client: TestClient, team: TeamContext, job_id: int, content: bytes, name: str = "a.png",
    **fields: Any,
) -> Any:  # fmt: skip
    return client.post(
        f"{API}/jobs/{job_id}/predict",
        headers=team.headers,
        files={"file": (name, content)},
        data={k: str(v) for k, v in fields.items()},
    )


def _local(exported: ExportedStudent) -> OnnxPredictor:
    return OnnxPredictor(exported.onnx, meta=load_meta_file(exported.safetensors))


def _assert_records_match(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected) > 0
    for a, b in zip(got, expected, strict=True):
        assert {k: a[k] for k in ("image_id", "file_name", "category_id")} == {
            k: b[k] for k in ("image_id", "file_name", "category_id")
        }
        assert a["bbox"] == pytest.approx(b["bbox"], abs=0.02)
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_predict_answers_the_students_detections(
    client: TestClient, team: TeamContext, finished_job: int, exported: ExportedStudent,
    photo: Image.Image,
) -> None:  # fmt: skip
    response = _predict(client, team, finished_job, _png(photo), score_threshold=0.1, image_id=4)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (120, 90)
    assert body["categories"] == [{"id": 7, "name": "car"}, {"id": 9, "name": "person"}]
    assert body["count"] == len(body["data"])
    local = _local(exported)
    found = local.detect(photo, local.options(score_threshold=0.1))
    expected = coco_records(found, local.meta, image_id=4, file_name="a.png")
    _assert_records_match(body["data"], expected)
    # The student stays loaded: a second request reuses it.
    cache = client.app.state.student_cache  # type: ignore[attr-defined]
    assert _predict(client, team, finished_job, _png(photo), max_detections=3).json()["count"] <= 3
    assert len(cache) == 1
    assert cache.keys()[0][0] == finished_job


def test_predict_slices_large_images(
    client: TestClient, team: TeamContext, finished_job: int, exported: ExportedStudent,
    photo: Image.Image,
) -> None:  # fmt: skip
    big = _scene(200, 150)  # a PNG of few colours: small enough for the test apps' limit
    response = _predict(client, team, finished_job, _png(big), slice=64, overlap=0.25,
                        score_threshold=0.1)  # fmt: skip
    assert response.status_code == 200, response.text
    local = _local(exported)
    found = local.detect(big, local.options(score_threshold=0.1), SliceOptions(64, 0.25))
    _assert_records_match(
        response.json()["data"], coco_records(found, local.meta, image_id=1, file_name="a.png")
    )
    too_many = _predict(client, team, finished_job, _png(big), slice=16)
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "slice"]


def test_predict_refuses_what_it_cannot_run(
    client: TestClient, team: TeamContext, team_factory: Any, finished_job: int,
    session_factory: sessionmaker[Session], photo: Image.Image,
) -> None:  # fmt: skip
    png = _png(photo)
    queued = new_job(client, team, session_factory)
    response = _predict(client, team, queued, png)
    assert response.status_code == 409
    assert "no student" in response.json()["detail"]
    other = team_factory(role="admin")
    assert _predict(client, other, finished_job, png).status_code == 404
    assert _predict(client, team, 2**31, png).status_code == 422

    def refused(response: Any, status: int, field: str, text: str) -> None:
        assert response.status_code == status, response.text
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", field]
        assert text in detail["msg"]

    refused(_predict(client, team, finished_job, b"just text", "notes.txt"), 415, "file",
            "is not an image")  # fmt: skip
    refused(_predict(client, team, finished_job, png[:200], "cut.png"), 422, "file",
            "cannot be decoded")  # fmt: skip
    refused(_predict(client, team, finished_job, b""), 422, "file", "is empty")
    large = b"\x89PNG\r\n\x1a\n" + bytes(70 * 1024)  # above the test apps' 64 KiB limit
    refused(_predict(client, team, finished_job, large), 413, "file", "larger than the limit")
    refused(_predict(client, team, finished_job, png, score_threshold=2), 422,
            "score_threshold", "below 1")  # fmt: skip
    refused(_predict(client, team, finished_job, png, max_detections="many"), 422,
            "max_detections", "not an integer")  # fmt: skip
    refused(_predict(client, team, finished_job, png, overlap=0.2), 422, "overlap",
            "needs a slice size")  # fmt: skip
    no_file = client.post(
        f"{API}/jobs/{finished_job}/predict", headers=team.headers,
        data={"score_threshold": "0.1"}, files={"other": ("x.txt", b"x")},
    )  # fmt: skip
    refused(no_file, 422, "file", "a file is required")


def test_viewers_may_predict(
    client: TestClient, team: TeamContext, finished_job: int, photo: Image.Image
) -> None:
    viewer = team.add_member(role="viewer")
    response = client.post(
        f"{API}/jobs/{finished_job}/predict",
        headers=viewer.headers,
        files={"file": ("a.png", _png(photo))},
    )
    assert response.status_code == 200, response.text


class _InProcess:
    """`with conn.client() as http` on the test app (no second lifespan)."""

    def __init__(self, http: TestClient) -> None:
        self.http = http

    def client(self) -> _InProcess:
        return self

    def __enter__(self) -> TestClient:
        return self.http

    def __exit__(self, *exc: object) -> None:
        return None


def test_cli_predicts_with_a_jobs_student(
    client: TestClient, team: TeamContext, finished_job: int, photo: Image.Image,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    http = TestClient(client.app, base_url=f"http://testserver{API}", headers=team.headers)

    def connection(args: argparse.Namespace) -> _InProcess:
        return _InProcess(http)

    monkeypatch.setattr(cli_predict, "connection_from", connection)
    image = tmp_path / "a.png"
    photo.save(image)
    out = tmp_path / "out"
    arguments = ["predict", f"job:{finished_job}", str(image), "--out", str(out)]
    assert distillery([*arguments, "--score-threshold", "0.1"]) == 0
    weights = out / "model" / f"job-{finished_job}-student.safetensors"
    assert load_predictor(weights).meta.categories[1].name == "person"
    records = json.loads((out / "detections.json").read_text())
    served = _predict(client, team, finished_job, _png(photo), score_threshold=0.1).json()["data"]
    _assert_records_match(records, served)
    assert (out / "pictures" / "a.png").is_file()
    queued = new_job(client, team, team.session_factory)
    assert distillery(["predict", f"job:{queued}", str(image), "--out", str(out)]) == 1


def test_the_student_cache_is_keyed_by_checksum_and_bounded() -> None:
    loads: list[str] = []

    def files(job_id: int, sha: str) -> StudentFiles:
        onnx = StoredFile("student.onnx", f"jobs/{job_id}/student.onnx", sha, 10)
        weights = StoredFile("student.safetensors", f"jobs/{job_id}/w", "w" + sha, 10)
        return StudentFiles(job_id=job_id, onnx=onnx, weights=weights)

    def loader(name: str) -> Any:
        def load() -> Any:
            loads.append(name)
            return name

        return load

    cache = StudentCache(capacity=2)
    assert cache.get(files(1, "a"), loader("1a")) == "1a"
    assert cache.get(files(1, "a"), loader("again")) == "1a"  # cached
    assert cache.get(files(1, "b"), loader("1b")) == "1b"  # the file was replaced
    assert cache.get(files(2, "a"), loader("2a")) == "2a"  # evicts the least recent, 1a
    assert cache.get(files(1, "a"), loader("1a reloaded")) == "1a reloaded"
    assert loads == ["1a", "1b", "2a", "1a reloaded"]
    assert len(cache) == 2


def test_predict_reads_the_student_from_s3(
    s3_app_client: TestClient, team: TeamContext, session_factory: sessionmaker[Session],
    exported: ExportedStudent, photo: Image.Image,
) -> None:  # fmt: skip
    client = s3_app_client
    job_id = new_job(client, team, session_factory)
    store_student(client, session_factory, job_id, exported)
    set_job(session_factory, job_id, state="succeeded")
    response = _predict(client, team, job_id, _png(photo), score_threshold=0.1)
    assert response.status_code == 200, response.text
    local = _local(exported)
    found = local.detect(photo, local.options(score_threshold=0.1))
    _assert_records_match(
        response.json()["data"], coco_records(found, local.meta, image_id=1, file_name="a.png")
    )

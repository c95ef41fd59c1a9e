"""`distillery predict` from a safetensors and an ONNX: detections.json and pictures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from cli.client import ClientError
from cli.main import main as distillery
from cli.predict import JOB_MODELS, fetch_job_student
from tests.core.predict.students import ExportedStudent


@pytest.fixture
def images(tmp_path: Path, photo: Image.Image) -> list[Path]:
    """Two pictures: a PNG and a larger JPEG, in a folder of their own."""
    folder = tmp_path / "images"
    folder.mkdir()
    photo.save(folder / "a.png")
    photo.resize((200, 150)).save(folder / "b.jpg", quality=95)
    return [folder / "a.png", folder / "b.jpg"]


def _records(out: Path) -> list[dict[str, object]]:
    records = json.loads((out / "detections.json").read_text())
    assert isinstance(records, list)
    return records


@pytest.mark.parametrize("model", ["safetensors", "onnx"])
def test_predict_writes_detections_and_pictures(
    model: str, student: ExportedStudent, images: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = student.safetensors if model == "safetensors" else student.onnx
    out = tmp_path / "out"
    status = distillery(
        ["predict", str(path), *map(str, images), "--out", str(out), "--score-threshold", "0.1"]
    )
    assert status == 0
    records = _records(out)
    assert records
    assert {r["image_id"] for r in records} <= {1, 2}
    assert {r["file_name"] for r in records} <= {"a.png", "b.jpg"}
    assert {r["category_id"] for r in records} <= {7, 9}
    assert all(len(r["bbox"]) == 4 and r["score"] > 0.1 for r in records)  # type: ignore[arg-type, operator]
    pictures = sorted(p.name for p in (out / "pictures").iterdir())
    assert pictures == ["a.png", "b.jpg"]
    assert Image.open(out / "pictures" / "b.jpg").size == (200, 150)
    assert "detections on 2 images" in capsys.readouterr().out


def test_every_model_file_gives_the_same_json(
    student: ExportedStudent, detections_onnx: Path, images: list[Path], tmp_path: Path
) -> None:
    outs = []
    models = (("t", student.safetensors), ("o", student.onnx), ("d", detections_onnx))
    for name, path in models:
        out = tmp_path / name
        arguments = [str(path), str(images[0].parent), "--out", str(out), "--no-pictures"]
        assert distillery(["predict", *arguments, "--slice", "64", "--overlap", "0.25"]) == 0
        outs.append(_records(out))
        assert not (out / "pictures").exists()
    torch_records, *onnx_outs = outs
    assert len(torch_records) > 0
    for onnx_records in onnx_outs:
        assert len(torch_records) == len(onnx_records)
        for a, b in zip(torch_records, onnx_records, strict=True):
            assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
            assert a["bbox"] == pytest.approx(b["bbox"], abs=0.1)
            assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_a_job_file_is_chosen_by_kind(tmp_path: Path) -> None:
    artifacts = [
        {"kind": "student_safetensors", "name": "student.safetensors"},
        {"kind": "student_onnx_detections", "name": "student_detections.onnx"},
    ]
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/jobs/3/artifacts":
            return httpx.Response(200, json={"data": artifacts, "count": 2})
        return httpx.Response(200, content=b"onnx bytes")

    with httpx.Client(transport=httpx.MockTransport(answer), base_url="http://x") as http:
        kind = JOB_MODELS["detections-onnx"]
        path = fetch_job_student(http, 3, tmp_path, kind=kind)
        assert path == tmp_path / "job-3-student_detections.onnx"
        assert path.read_bytes() == b"onnx bytes"
        assert asked[-1] == "/jobs/3/artifacts/student_detections.onnx"
        with pytest.raises(ClientError, match="job 3 has no student_onnx artifact"):
            fetch_job_student(http, 3, tmp_path, kind=JOB_MODELS["onnx"])


def test_predict_reports_bad_input(
    student: ExportedStudent, images: list[Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = str(tmp_path / "out")
    assert distillery(["predict", str(student.onnx), str(tmp_path / "nope.png"), "--out", out]) == 2
    assert "nope.png: no such file or folder" in capsys.readouterr().err
    assert distillery(["predict", "job:x", str(images[0]), "--out", out]) == 2
    assert "job:ID" in capsys.readouterr().err
    assert distillery(["predict", str(student.onnx), str(images[0]), "--out", out,
                       "--job-model", "onnx"]) == 2  # fmt: skip
    assert "--job-model goes with a job:ID model" in capsys.readouterr().err
    assert distillery(["predict", str(student.onnx), str(images[0]), "--out", out,
                       "--overlap", "0.3"]) == 2  # fmt: skip
    assert "--overlap and --no-full-image go with --slice" in capsys.readouterr().err
    alone = tmp_path / "alone" / "model.onnx"
    alone.parent.mkdir()
    shutil.copy(student.onnx, alone)
    assert distillery(["predict", str(alone), str(images[0]), "--out", out]) == 1
    assert "carries no metadata" in capsys.readouterr().err
    text = tmp_path / "notes.png"
    text.write_text("hello")
    assert distillery(["predict", str(student.onnx), str(text), "--out", out]) == 1
    assert "notes.png: not an image" in capsys.readouterr().err

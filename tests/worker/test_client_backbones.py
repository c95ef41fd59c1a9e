"""`distillery backbones upload/list` and `submit --student-backbone/--teacher-backbone`,
offline against the FakeApi of tests/worker/test_client.py."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cli.main import main as distillery
from tests.worker.test_client import SERVER, FakeApi, _spec_file, api

__all__ = ["api"]


def test_backbone_upload_waits_and_names_the_keys_of_a_mismatch(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "resnet18-f37072fd.pth"
    weights.write_bytes(b"PK\x03\x04")
    row = {
        "id": 5,
        "name": "resnet18-f37072fd",
        "status": "validating",
        "arch": "mobilenet_v2",
        "size_bytes": 4,
    }
    bad = {
        **row,
        "status": "invalid",
        "errors": [
            {
                "file": weights.name,
                "message": f"{weights.name}: weights do not match the architecture",
                "missing": [f"features.{i}.0.weight" for i in range(8)],
                "unexpected": ["conv1.weight"],
            }
        ],
    }
    api.json("POST", "/backbones", row, status=202)
    api.json("GET", "/backbones/5", bad)
    argv = ["backbones", "upload", str(weights), "--arch", "mobilenet_v2", "--wait", *SERVER]
    assert distillery(argv) == 1
    (sent,) = api.sent("POST", "/backbones")
    assert b'name="arch"\r\n\r\nmobilenet_v2' in sent.content
    assert b'filename="resnet18-f37072fd.pth"' in sent.content
    out = capsys.readouterr().out
    assert "backbone 5 'resnet18-f37072fd' invalid:" in out
    assert "missing keys (8): features.0.0.weight" in out and "and 3 more" in out
    assert "unexpected keys (1): conv1.weight" in out

    ready = {
        **row,
        "id": 6,
        "status": "ready",
        "info": {"loaded": 312, "ignored": 2},
        "creator_email": "ana@example.test",
        "created_at": "2026-12-02T08:00:00Z",
    }
    api.json("POST", "/backbones", {**ready, "status": "validating"}, status=202)
    api.json("GET", "/backbones/6", ready)
    argv = ["backbones", "upload", str(weights), "--arch", "mobilenet_v2", "--wait", *SERVER]
    assert distillery(argv) == 0
    assert "backbone 6 'resnet18-f37072fd' ready: mobilenet_v2, 312 tensors loaded" in (
        capsys.readouterr().out
    )
    api.json("GET", "/backbones", {"data": [ready], "count": 1})
    assert distillery(["backbones", "list", "--arch", "mobilenet_v2", *SERVER]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "NAME", "ARCH", "STATUS", "SIZE", "UPLOADED", "BY", "CREATED"]
    assert "ana@example.test" in line.split() and "ready" in line.split()
    (listed,) = api.sent("GET", "/backbones")
    assert listed.url.params["arch"] == "mobilenet_v2"
    with pytest.raises(SystemExit):
        distillery(["backbones", "upload", str(weights), "--arch", "vgg16", *SERVER])


def test_submit_picks_uploaded_backbones_and_prints_them(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def created(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(
            201, json={"id": 9, "state": "queued", "kind": "distill", "spec": body["spec"]}
        )

    api.on("POST", "/jobs", created)
    argv = [
        "submit",
        str(_spec_file(tmp_path)),
        "--dataset",
        "3",
        "--teacher",
        "7",
        "--student-backbone",
        "5",
        "--teacher-backbone",
        "6",
    ]
    assert distillery([*argv, *SERVER]) == 0
    spec = json.loads(api.sent("POST", "/jobs")[0].content)["spec"]
    assert spec["student"]["backbone_id"] == 5 and spec["teacher"]["backbone_id"] == 6
    assert "pretrained_backbone" not in spec["student"]
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "  dataset 3, teacher 7, teacher backbone 6, student backbone 5"

"""Attacks and careless uploads through the real API, worker and store, on both deployments.

Each test replays a finding of the hardening review: server files read through dataset image
paths or spec fields, validations that never end, archive bombs, good layouts refused, URL
tokens. Every refusal happens before any training starts, and no byte of a file outside the
upload reaches an error, an artifact or an event.
"""

from __future__ import annotations

import json
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from core.data.synthetic import generate_synthetic
from tests.e2e.live import Platform
from tests.worker.harness import IMAGE_SIZE, distill_spec

VALIDATION_TIMEOUT = 60.0
"""Every validation below must end well within this; before the fixes some never ended."""


def _synthetic(folder: Path) -> Path:
    return generate_synthetic(folder, images=6, size=IMAGE_SIZE, seed=1)


def _zip_folder(folder: Path, archive: Path) -> Path:
    return Path(shutil.make_archive(str(archive.with_suffix("")), "zip", folder))


def _outside_image(folder: Path) -> Path:
    """A real image on the 'server', outside every upload: what an attacker wants to read."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"server-secret-{uuid.uuid4().hex[:6]}.png"
    pixels = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 200, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _with_val_file_name(platform: Platform, file_name: str) -> Path:
    """The synthetic dataset zipped, with its first val image pointing at `file_name`."""
    folder = _synthetic(platform.tmp / f"attack-{uuid.uuid4().hex[:6]}")
    ann = folder / "annotations" / "instances_val.json"
    coco = json.loads(ann.read_text())
    coco["images"][0]["file_name"] = file_name
    ann.write_text(json.dumps(coco))
    return _zip_folder(folder, folder.with_suffix(".zip"))


def _dataset_errors(platform: Platform, dataset_id: int) -> tuple[str, list[dict[str, Any]]]:
    row = platform.wait_status("datasets", dataset_id, timeout=VALIDATION_TIMEOUT)
    return row["status"], row.get("errors") or []


def test_image_paths_outside_the_archive_are_refused_alike_and_no_job_starts(
    platform: Platform, inputs: dict[str, int]
) -> None:
    secret = _outside_image(platform.tmp / "server")
    climbing = "../" * 12 + str(secret).lstrip("/")
    attacks = {
        "absolute": str(secret),
        "climbing": climbing,
        "absolute, missing": str(secret.with_name("no-such-file.png")),
        "climbing, missing": climbing.replace(secret.name, "no-such-file.png"),
    }
    messages = {}
    for label, file_name in attacks.items():
        archive = _with_val_file_name(platform, file_name)
        dataset = platform.upload("datasets", archive, name=f"attack {label}", format="coco")
        status, errors = _dataset_errors(platform, dataset["id"])
        assert status == "invalid", (label, errors)
        text = json.dumps(errors)
        assert "outside" in text, (label, text)
        # Named by the archive's own file, never by a path of the worker's disk.
        assert "instances_val.json" in text
        assert str(platform.deployment.settings.data_dir) not in text
        assert "/tmp/" not in text.replace(json.dumps(file_name)[1:-1], "")
        messages[label] = [e["message"].replace(file_name, "<name>") for e in errors]
        # A refused dataset cannot be used by a job: nothing ever reads the outside file.
        spec = distill_spec(dataset["id"], inputs["teacher"])
        response = platform.http.post("/jobs", json={"spec": spec})
        assert response.status_code == 422, response.text
    # No existence oracle: a file that exists and one that does not get the same answer.
    assert messages["absolute"] == messages["absolute, missing"]
    assert messages["climbing"] == messages["climbing, missing"]


def test_a_symlink_inside_a_tar_upload_is_refused(platform: Platform) -> None:
    import tarfile

    folder = _synthetic(platform.tmp / f"link-{uuid.uuid4().hex[:6]}")
    archive = folder.with_suffix(".tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname=".")
        link = tarfile.TarInfo("images/val/evil.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/hostname"
        tar.addfile(link)
    dataset = platform.upload("datasets", archive, name="symlink", format="coco")
    status, errors = _dataset_errors(platform, dataset["id"])
    assert status == "invalid"
    assert "images/val/evil.jpg" in json.dumps(errors)


def test_a_pretrained_backbone_path_is_refused_before_anything_runs(
    platform: Platform, inputs: dict[str, int]
) -> None:
    # The blob of the team's own teacher, as another team would aim at it: any server path.
    target = next(platform.deployment.settings.data_dir.rglob("*.safetensors"), None)
    path = str(target) if target is not None else "/etc/hostname"
    jobs_before = platform.get("/jobs")["count"]
    for section in ("teacher", "student"):
        spec = distill_spec(inputs["dataset"], inputs["teacher"])
        spec[section]["pretrained_backbone"] = path
        response = platform.http.post("/jobs", json={"spec": spec})
        assert response.status_code == 422, response.text
        detail = json.dumps(response.json())
        assert "pretrained_backbone" in detail and section in detail
        assert path not in detail  # the answer says nothing of the path
    assert platform.get("/jobs")["count"] == jobs_before


def test_deeply_nested_annotations_end_invalid_within_seconds(platform: Platform) -> None:
    folder = _synthetic(platform.tmp / f"nested-{uuid.uuid4().hex[:6]}")
    (folder / "annotations" / "instances_train.json").write_text("[" * 200_000)
    archive = _zip_folder(folder, folder.with_suffix(".zip"))
    dataset = platform.upload("datasets", archive, name="nested", format="coco")
    status, errors = _dataset_errors(platform, dataset["id"])
    assert status == "invalid"
    text = json.dumps(errors)
    assert "instances_train.json" in text and "nest" in text.lower()


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_non_finite_bbox_ends_invalid(platform: Platform, value: str) -> None:
    folder = _synthetic(platform.tmp / f"nan-{uuid.uuid4().hex[:6]}")
    ann = folder / "annotations" / "instances_train.json"
    coco = json.loads(ann.read_text())
    coco["annotations"][0]["bbox"][2] = 12345.5
    ann.write_text(json.dumps(coco).replace("12345.5", value, 1))
    archive = _zip_folder(folder, folder.with_suffix(".zip"))
    dataset = platform.upload("datasets", archive, name=f"bbox {value}", format="coco")
    status, errors = _dataset_errors(platform, dataset["id"])
    assert status == "invalid", errors
    assert "instances_train.json" in json.dumps(errors)


def test_a_zip_bomb_is_refused_within_seconds_at_the_default_limits(platform: Platform) -> None:
    folder = _synthetic(platform.tmp / f"bomb-{uuid.uuid4().hex[:6]}")
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
        zeros = bytes(1 << 20)
        with zf.open("images/train/huge.bin", "w", force_zip64=True) as member:
            for _ in range(1024):  # 1 GiB of zeros in about 1 MB
                member.write(zeros)
    assert archive.stat().st_size < 8 * 2**20
    dataset = platform.upload("datasets", archive, name="bomb", format="coco")
    status, errors = _dataset_errors(platform, dataset["id"])
    assert status == "invalid"
    assert "huge.bin" in json.dumps(errors)


def test_an_archive_of_many_empty_members_is_refused_at_the_default_limits(
    platform: Platform,
) -> None:
    archive = platform.tmp / f"many-{uuid.uuid4().hex[:6]}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/instances_train.json", "{}")
        for i in range(120_000):
            zf.writestr(f"images/train/{i}.jpg", b"")
    dataset = platform.upload("datasets", archive, name="many", format="coco")
    status, errors = _dataset_errors(platform, dataset["id"])
    assert status == "invalid"
    assert "members" in json.dumps(errors) and "more than" in json.dumps(errors)


def _layout_top_level(folder: Path) -> None:
    """Everything in one split: `annotations.json` beside `images/`."""
    train = json.loads((folder / "annotations" / "instances_train.json").read_text())
    val = json.loads((folder / "annotations" / "instances_val.json").read_text())
    for image in train["images"]:
        image["file_name"] = f"train/{image['file_name']}"
    for image in val["images"]:
        image["file_name"] = f"val/{image['file_name']}"
    train["images"] += val["images"]
    train["annotations"] += val["annotations"]
    shutil.rmtree(folder / "annotations")
    (folder / "annotations.json").write_text(json.dumps(train))


def _layout_split_folders(folder: Path) -> None:
    """An exporter's layout: `train/` and `valid/`, each with its JSON beside the images."""
    for split, exported in (("train", "train"), ("val", "valid")):
        target = folder / exported
        shutil.move(str(folder / "images" / split), str(target))
        shutil.move(
            str(folder / "annotations" / f"instances_{split}.json"),
            str(target / "_annotations.coco.json"),
        )
    shutil.rmtree(folder / "annotations")
    shutil.rmtree(folder / "images")


@pytest.mark.parametrize(
    "layout", [None, _layout_top_level, _layout_split_folders], ids=["instances", "top", "split"]
)
def test_the_common_coco_layouts_are_accepted(platform: Platform, layout: Any) -> None:
    folder = _synthetic(platform.tmp / f"layout-{uuid.uuid4().hex[:6]}")
    if layout is not None:
        layout(folder)
    archive = _zip_folder(folder, folder.with_suffix(".zip"))
    dataset = platform.upload("datasets", archive, name="layout", format="coco")
    status, errors = _dataset_errors(platform, dataset["id"])
    assert status == "ready", errors
    assert platform.get(f"/datasets/{dataset['id']}")["statistics"]["images"] == 6


def test_api_tokens_work_only_in_the_authorization_header(platform: Platform) -> None:
    url = f"{platform.api.url}/api/v1/jobs"
    assert httpx.get(url, params={"access_token": platform.token}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {platform.token}"}).status_code == 200

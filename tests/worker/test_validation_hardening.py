"""Validations always end: hostile uploads end `invalid` with a message, stuck ones are reaped.

The worker's `validate_dataset` / `validate_teacher` run in this process on a real store
(`db_url` x `blob_store`: SQLite and PostgreSQL, a local folder and S3).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.blobs import BlobStore
from store.db import session_scope
from store.models import Dataset, Teacher, utcnow
from store.settings import Settings
from tests.platform_fixtures import TeamContext
from tests.worker.harness import TEACHER_ARCH, TEACHER_FPN, make_settings
from worker.context import WorkerContext, build_context
from worker.validation import validate_dataset, validate_teacher

OUTSIDE = "points outside the dataset"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def ctx(
    engine: Engine,
    session_factory: sessionmaker[Session],
    blob_store: BlobStore,
    tmp_path: Path,
) -> WorkerContext:
    """A worker context on the parametrised database and blob store (engine shared)."""
    settings = Settings(data_dir=tmp_path / "worker")
    return WorkerContext(
        settings=settings, engine=engine, sessions=session_factory, blobs=blob_store
    )


@pytest.fixture
def team(team_factory: Callable[..., TeamContext]) -> TeamContext:
    """A team of its own for the test's rows."""
    return team_factory()


def _dataset(ctx: WorkerContext, team: TeamContext, archive: Path, fmt: str = "auto") -> int:
    key = f"datasets/{uuid.uuid4().hex[:12]}/{archive.name}"
    ctx.blobs.put_file(key, archive)
    with session_scope(ctx.sessions) as session:
        return repo.create_dataset(
            session,
            team_id=team.team_id,
            created_by=team.user_id,
            name=archive.stem,
            archive_key=key,
            format=fmt,
        ).id


def _teacher(ctx: WorkerContext, team: TeamContext, checkpoint: Path) -> int:
    key = f"teachers/{uuid.uuid4().hex[:12]}/{checkpoint.name}"
    ctx.blobs.put_file(key, checkpoint)
    with session_scope(ctx.sessions) as session:
        return repo.create_teacher(
            session,
            team_id=team.team_id,
            created_by=team.user_id,
            name=checkpoint.stem,
            arch=TEACHER_ARCH,
            checkpoint_key=key,
            fpn_channels=TEACHER_FPN,
        ).id


def _dataset_row(ctx: WorkerContext, dataset_id: int) -> tuple[str, list[dict[str, Any]]]:
    with session_scope(ctx.sessions) as session:
        row = repo.dataset_by_id(session, dataset_id=dataset_id)
        assert row is not None
        return row.status, list(row.errors or [])


def _teacher_row(ctx: WorkerContext, teacher_id: int) -> tuple[str, list[dict[str, Any]]]:
    with session_scope(ctx.sessions) as session:
        row = repo.teacher_by_id(session, teacher_id=teacher_id)
        assert row is not None
        return row.status, list(row.errors or [])


def _assert_clean(errors: list[dict[str, Any]], ctx: WorkerContext, *folders: Path) -> None:
    """Messages hold no traceback and no path of this machine."""
    assert errors
    text = json.dumps(errors)
    assert "Traceback" not in text
    for folder in (ctx.work_dir, ctx.settings.data_dir, *folders):
        assert str(folder) not in text and str(folder.resolve()) not in text
    assert "validate-" not in text


def _coco_folder(tmp_path: Path, images: int = 4) -> Path:
    from core.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path / "coco", images=images, size=64, seed=0)


def _zip(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return out


# --- datasets ----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_deeply_nested_json_ends_invalid(
    ctx: WorkerContext, team: TeamContext, tmp_path: Path
) -> None:
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("annotations/instances_train.json", "[" * 200_000)
    dataset_id = _dataset(ctx, team, archive)
    assert validate_dataset(ctx, dataset_id) == "invalid"
    status, errors = _dataset_row(ctx, dataset_id)
    assert status == "invalid"
    assert [(e["file"], e["message"]) for e in errors] == [
        ("annotations/instances_train.json", "nested 200000 levels deep; at most 64 are allowed")
    ]
    _assert_clean(errors, ctx, tmp_path)


def test_a_climbing_file_name_ends_invalid_naming_the_member(
    ctx: WorkerContext, team: TeamContext, tmp_path: Path
) -> None:
    folder = _coco_folder(tmp_path)
    annotation = folder / "annotations" / "instances_train.json"
    coco = json.loads(annotation.read_text())
    coco["images"][0]["file_name"] = "../../../../../../etc/passwd"
    annotation.write_text(json.dumps(coco))
    dataset_id = _dataset(ctx, team, _zip(folder, tmp_path / "climb.zip"))
    assert validate_dataset(ctx, dataset_id) == "invalid"
    status, errors = _dataset_row(ctx, dataset_id)
    assert status == "invalid"
    assert [(e["file"], e["image_id"], e["message"]) for e in errors] == [
        (
            "annotations/instances_train.json",
            coco["images"][0]["id"],
            f"file_name '../../../../../../etc/passwd' {OUTSIDE}",
        )
    ]
    _assert_clean(errors, ctx, tmp_path)


def _voc_bad_encoding(tmp_path: Path) -> tuple[Path, str, str]:
    from core.data.voc_export import write_voc

    voc = write_voc(_coco_folder(tmp_path), tmp_path / "voc")
    first = sorted((voc / "Annotations").glob("*.xml"))[0]
    first.write_text('<?xml version="1.0" encoding="bogus"?><annotation/>')
    return _zip(voc, tmp_path / "voc.zip"), f"Annotations/{first.name}", "unknown encoding"


def _json_huge_integer(tmp_path: Path) -> tuple[Path, str, str]:
    folder = _coco_folder(tmp_path)
    annotation = folder / "annotations" / "instances_val.json"
    text = annotation.read_text()
    annotation.write_text(text.replace('"id": ', '"id": ' + "9" * 5000, 1))
    return _zip(folder, tmp_path / "ints.zip"), "annotations/instances_val.json", "4300 digits"


def _deflate64_member(tmp_path: Path) -> tuple[Path, str, str]:
    archive = tmp_path / "deflate64.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("annotations/instances_train.json", "{}")
    raw = bytearray(archive.read_bytes())
    # method 9 (deflate64, which zipfile cannot unpack) in the local and central headers
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    raw[local + 8 : local + 10] = (9).to_bytes(2, "little")
    raw[central + 10 : central + 12] = (9).to_bytes(2, "little")
    archive.write_bytes(bytes(raw))
    return archive, "deflate64.zip", "compression method 9 is not supported"


def _odd_types(tmp_path: Path) -> tuple[Path, str, str]:
    folder = _coco_folder(tmp_path)
    annotation = folder / "annotations" / "instances_train.json"
    coco = json.loads(annotation.read_text())
    coco["annotations"][0]["image_id"] = [1]
    coco["annotations"][1]["category_id"] = {"a": 1}
    coco["categories"].append(7)
    annotation.write_text(json.dumps(coco))
    return _zip(folder, tmp_path / "types.zip"), "annotations/instances_train.json", "integer"


@pytest.mark.parametrize(
    "make", [_voc_bad_encoding, _json_huge_integer, _deflate64_member, _odd_types]
)
def test_files_that_tripped_the_checker_end_invalid_naming_the_defect(
    ctx: WorkerContext,
    team: TeamContext,
    tmp_path: Path,
    make: Callable[[Path], tuple[Path, str, str]],
) -> None:
    archive, file, words = make(tmp_path)
    dataset_id = _dataset(ctx, team, archive)
    assert validate_dataset(ctx, dataset_id) == "invalid"
    status, errors = _dataset_row(ctx, dataset_id)
    assert status == "invalid"
    assert any(e["file"] == file and words in e["message"] for e in errors), errors
    _assert_clean(errors, ctx, tmp_path)


@pytest.mark.parametrize(
    "failure", [RecursionError("deep"), MemoryError(), KeyError("/srv/secret/path"), TypeError("x")]
)
def test_any_exception_while_checking_ends_invalid(
    ctx: WorkerContext,
    team: TeamContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: BaseException,
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr("core.data.validate.validate_dataset", explode)
    dataset_id = _dataset(ctx, team, _zip(_coco_folder(tmp_path), tmp_path / "ok.zip"))
    with caplog.at_level(logging.ERROR, logger="worker.validation"):
        assert validate_dataset(ctx, dataset_id) == "invalid"
    status, errors = _dataset_row(ctx, dataset_id)
    kind = type(failure).__name__
    assert status == "invalid"
    assert [e["message"] for e in errors] == [
        f"the dataset could not be validated ({kind}); check the file and upload again, "
        "or report this if it persists"
    ]
    assert "/srv/secret" not in json.dumps(errors)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is type(failure)]
    assert logged, "the traceback is logged"


def test_a_good_dataset_still_ends_ready(
    ctx: WorkerContext, team: TeamContext, tmp_path: Path
) -> None:
    folder = _coco_folder(tmp_path)
    # the most common hand-made layout: one annotations.json beside the pictures
    flat = tmp_path / "flat"
    shutil.copytree(folder / "images" / "train", flat)
    shutil.copyfile(folder / "annotations" / "instances_train.json", flat / "annotations.json")
    dataset_id = _dataset(ctx, team, _zip(flat, tmp_path / "flat.zip"))
    assert validate_dataset(ctx, dataset_id) == "ready"
    with session_scope(ctx.sessions) as session:
        row = repo.dataset_by_id(session, dataset_id=dataset_id)
        assert row is not None and row.statistics is not None
        assert set(row.statistics["splits"]) == {"train"}


# --- teachers ----------------------------------------------------------------------------------


def test_a_checkpoint_with_a_scalar_classifier_ends_invalid(
    ctx: WorkerContext, team: TeamContext, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "scalar.safetensors"
    save_file({"roi_heads.box_predictor.cls_score.weight": torch.tensor(1.0)}, str(path))
    teacher_id = _teacher(ctx, team, path)
    assert validate_teacher(ctx, teacher_id) == "invalid"
    status, errors = _teacher_row(ctx, teacher_id)
    assert status == "invalid"
    _assert_clean(errors, ctx, tmp_path)


def test_any_exception_while_checking_a_teacher_ends_invalid(
    ctx: WorkerContext, team: TeamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("core.models.teachers.load_state_dict", explode)
    path = tmp_path / "any.safetensors"
    path.write_bytes(b"\0" * 16)
    teacher_id = _teacher(ctx, team, path)
    assert validate_teacher(ctx, teacher_id) == "invalid"
    status, errors = _teacher_row(ctx, teacher_id)
    assert status == "invalid"
    assert "could not be validated (RecursionError)" in errors[0]["message"]
    _assert_clean(errors, ctx, tmp_path)


# --- the watchdog ------------------------------------------------------------------------------


def test_stale_validations_are_failed_once_and_fresh_ones_kept(
    ctx: WorkerContext, team: TeamContext, tmp_path: Path
) -> None:
    archive = _zip(_coco_folder(tmp_path, images=3), tmp_path / "ds.zip")
    stuck, fresh, done = (_dataset(ctx, team, archive) for _ in range(3))
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"x")
    stuck_teacher, fresh_teacher = _teacher(ctx, team, path), _teacher(ctx, team, path)
    with session_scope(ctx.sessions) as session:
        repo.set_dataset_validation(session, dataset_id=done, status="ready", statistics={})
    with session_scope(ctx.sessions) as session:
        for dataset_id in (stuck, done):
            session.execute(
                update(Dataset).where(Dataset.id == dataset_id).values(updated_at=LONG_AGO)
            )
        session.execute(
            update(Teacher).where(Teacher.id == stuck_teacher).values(created_at=LONG_AGO)
        )
    message = "validation did not finish within 1800 s; upload again"
    bound = LONG_AGO + timedelta(days=1)  # only this test's back-dated rows are older
    with session_scope(ctx.sessions) as session:
        failed = repo.fail_stale_validations(session, older_than=bound, message=message)
    assert failed == {"datasets": [stuck], "teachers": [stuck_teacher]}
    assert _dataset_row(ctx, stuck) == (
        "invalid",
        [{"file": None, "image_id": None, "annotation_id": None, "message": message}],
    )
    assert _teacher_row(ctx, stuck_teacher)[0] == "invalid"
    assert _dataset_row(ctx, fresh)[0] == "validating"
    assert _teacher_row(ctx, fresh_teacher)[0] == "validating"
    assert _dataset_row(ctx, done)[0] == "ready"
    with session_scope(ctx.sessions) as session:
        again = repo.fail_stale_validations(session, older_than=bound, message=message)
    assert again == {"datasets": [], "teachers": []}
    # a late delivery of the reaped validation changes nothing
    assert validate_dataset(ctx, stuck) == "skipped"
    # nor does a validation that started before the watchdog and finishes after it
    with session_scope(ctx.sessions) as session:
        late = repo.set_dataset_validation(
            session, dataset_id=stuck, status="ready", statistics={"images": 3}
        )
        late_teacher = repo.set_teacher_validation(
            session, teacher_id=stuck_teacher, status="ready", info={"params": 1}
        )
    assert late is None and late_teacher is None
    assert _dataset_row(ctx, stuck)[0] == "invalid"
    assert _teacher_row(ctx, stuck_teacher)[0] == "invalid"


def test_the_reaper_fails_validations_past_the_timeout(tmp_path: Path) -> None:
    from worker.celery_app import make_celery
    from worker.reaper import reap_once

    settings = make_settings("embedded", tmp_path / "data", validation_timeout_seconds=600)
    own = build_context(settings)
    with session_scope(own.sessions) as session:
        team_row = repo.create_team(session, name=f"team-{uuid.uuid4().hex[:8]}")
        dataset_id = repo.create_dataset(
            session, team_id=team_row.id, created_by=None, name="d", archive_key="datasets/x.zip"
        ).id
        teacher_id = repo.create_teacher(
            session,
            team_id=team_row.id,
            created_by=None,
            name="t",
            arch=TEACHER_ARCH,
            checkpoint_key="teachers/x.safetensors",
        ).id
    app = make_celery(settings)
    assert reap_once(app) == []
    assert _dataset_row(own, dataset_id)[0] == "validating"
    assert reap_once(app, now=utcnow() + timedelta(seconds=601)) == []
    message = "validation did not finish within 600 s; upload again"
    assert _dataset_row(own, dataset_id) == (
        "invalid",
        [{"file": None, "image_id": None, "annotation_id": None, "message": message}],
    )
    assert _teacher_row(own, teacher_id) == (
        "invalid",
        [{"file": None, "image_id": None, "annotation_id": None, "message": message}],
    )
    own.close()

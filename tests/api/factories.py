"""What the API tests need: rows written straight into the database (as a worker would),
and tiny upload files."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from store.models import Dataset, Job, Teacher
from tests.platform_fixtures import TeamContext

MAX_UPLOAD_BYTES = 64 * 1024
"""The upload limit of the test apps (small, so a 413 needs only a small body)."""


def make_dataset(
    factory: sessionmaker[Session], team: TeamContext, *, status: str = "ready", name: str = "ds"
) -> int:
    """A dataset row of the team in `status` (no blob), straight in the database."""
    with session_scope(factory) as s:
        ds = repo.create_dataset(
            s,
            team_id=team.team_id,
            created_by=team.user_id,
            name=name,
            archive_key=f"datasets/{team.team_id}/x/archive.zip",
        )
        repo.set_dataset_validation(s, dataset_id=ds.id, status=status, statistics={"images": 3})
        return ds.id


def make_teacher(
    factory: sessionmaker[Session],
    team: TeamContext,
    *,
    status: str = "ready",
    arch: str = "retinanet_resnet18_fpn",
    fpn_channels: int = 64,
) -> int:
    """A teacher row of the team in `status` (no blob), straight in the database."""
    with session_scope(factory) as s:
        teacher = repo.create_teacher(
            s,
            team_id=team.team_id,
            created_by=team.user_id,
            name="t",
            arch=arch,
            checkpoint_key=None,
            fpn_channels=fpn_channels,
            status=status,
        )
        return teacher.id


def distill_spec(dataset_id: int, teacher_id: int, **distill: Any) -> dict[str, Any]:
    """A small distillation spec on a platform dataset and teacher."""
    return {
        "kind": "distill",
        "data": {"dataset_id": dataset_id, "image_size": 64, "batch_size": 2},
        "teacher": {"teacher_id": teacher_id},
        "student": {"arch": "retinanet_mobilenet_v2_fpn", "fpn_channels": 32},
        "distill": distill or {},
        "schedule": {"epochs": 1, "max_steps_per_epoch": 2},
    }


def set_job(factory: sessionmaker[Session], job_id: int, **values: Any) -> None:
    """Write columns of a job row directly (what a worker would do)."""
    with session_scope(factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        for key, value in values.items():
            setattr(job, key, value)


def row_count(
    factory: sessionmaker[Session], model: type[Dataset] | type[Teacher], team_id: int
) -> int:
    """How many rows of `model` the team has."""
    with factory() as s:
        return s.query(model).filter(model.team_id == team_id).count()


def tiny_zip() -> bytes:
    """A zip with a COCO-looking annotation file (validation is the worker's job)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("annotations/instances_train.json", '{"images": []}')
    return buffer.getvalue()


def tiny_tar_gz() -> bytes:
    """A gzipped tar with one file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b'{"images": []}'
        info = tarfile.TarInfo("annotations/instances_train.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tiny_safetensors() -> bytes:
    """A valid safetensors file holding one float32 tensor of 2 values."""
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, separators=(",", ":")
    ).encode()
    return struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0)

"""The runner refuses a platform job whose spec names a local file, before any training."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from store import repositories as repo
from store.db import session_scope
from store.settings import Settings
from tests.platform_fixtures import TeamContext
from worker.context import WorkerContext, build_context
from worker.runner import PLATFORM_PATH_FIELDS, execute_job


@pytest.fixture
def ctx(db_url: str, tmp_path: Path) -> Iterator[WorkerContext]:
    """A worker context on the test database with its own scratch folder."""
    context = build_context(Settings(data_dir=tmp_path / "data", database_url=db_url))
    yield context
    context.close()


def _spec(section: str, field: str, secret: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": "distill",
        "data": {"dataset_id": 1, "image_size": 64},
        "teacher": {"teacher_id": 1},
        "student": {},
        "distill": {"lambda_kd": 0.0},
        "schedule": {"epochs": 1, "max_steps_per_epoch": 1},
    }
    spec[section][field] = secret
    return spec


@pytest.mark.parametrize(("section", "field"), PLATFORM_PATH_FIELDS)
def test_a_local_path_in_a_platform_spec_fails_the_job_naming_the_field(
    ctx: WorkerContext,
    team_factory: Callable[..., TeamContext],
    tmp_path: Path,
    section: str,
    field: str,
) -> None:
    team = team_factory()
    secret = tmp_path / "other-team" / "weights.pt"  # exists: the error must not say so
    secret.parent.mkdir()
    secret.write_bytes(b"x")
    with session_scope(ctx.sessions) as session:
        job_id = repo.create_job(
            session,
            team_id=team.team_id,
            created_by=team.user_id,
            kind="distill",
            spec=_spec(section, field, str(secret)),
        ).id
    assert execute_job(ctx, job_id) == "failed"
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None and job.state == "failed"
        error = job.error or ""
        assert job.progress is None  # no training step ran
    assert error.startswith(f"{section}.{field}: local paths are not allowed"), error
    assert str(secret) not in error and "other-team" not in error

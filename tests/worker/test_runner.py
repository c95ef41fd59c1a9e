"""The runner in this process on the embedded store: teacher jobs, failures users understand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from safetensors.torch import load_file

from store import repositories as repo
from store.db import session_scope
from store.models import Teacher
from tests.worker.harness import (
    TEACHER_ARCH,
    TEACHER_FPN,
    Seeded,
    distill_spec,
    make_settings,
    seed_team,
    teacher_spec,
)
from worker.context import WorkerContext, build_context
from worker.runner import execute_job


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerContext, Seeded]]:
    """An embedded store with a team, a ready dataset and a ready teacher."""
    tmp = tmp_path_factory.mktemp("runner")
    settings = make_settings("embedded", tmp / "data")
    seeded = seed_team(settings, tmp)
    ctx = build_context(settings)
    yield ctx, seeded
    ctx.close()


def _job(ctx: WorkerContext, seeded: Seeded, spec: dict[str, object]) -> int:
    with session_scope(ctx.sessions) as session:
        return repo.create_job(
            session,
            team_id=seeded.team_id,
            created_by=seeded.user_id,
            kind=str(spec["kind"]),
            spec=spec,
            dataset_id=seeded.dataset_id,
            teacher_id=seeded.teacher_id if spec["kind"] == "distill" else None,
        ).id


def test_a_teacher_job_registers_a_ready_teacher(
    embedded: tuple[WorkerContext, Seeded],
) -> None:
    ctx, seeded = embedded
    spec = teacher_spec(seeded.dataset_id, epochs=1, steps=1)
    job_id = _job(ctx, seeded, spec)
    assert execute_job(ctx, job_id) == "succeeded"
    # A second delivery of a finished job changes nothing.
    assert execute_job(ctx, job_id) == "dropped"
    with session_scope(ctx.sessions) as session:
        teacher = session.query(Teacher).filter(Teacher.source_job_id == job_id).one()
        assert teacher.status == "ready" and teacher.team_id == seeded.team_id
        assert teacher.arch == TEACHER_ARCH and teacher.fpn_channels == TEACHER_FPN
        original = repo.teacher_by_id(session, teacher_id=seeded.teacher_id)
        assert original is not None and teacher.num_classes == original.num_classes
        key = teacher.checkpoint_key
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None and job.state == "succeeded" and job.attempt == 1
        artifacts = repo.list_artifacts(session, team_id=seeded.team_id, job_id=job_id)
        names = {a.name for a in artifacts}
    assert "teacher.safetensors" in names
    assert key is not None and not key.startswith(f"jobs/{job_id}/")
    local = ctx.work_dir / "check.safetensors"
    ctx.blobs.download(key, local)
    assert load_file(str(local))


def test_a_job_on_an_invalid_dataset_fails_saying_why(
    embedded: tuple[WorkerContext, Seeded],
) -> None:
    ctx, seeded = embedded
    with session_scope(ctx.sessions) as session:
        dataset = repo.dataset_by_id(session, dataset_id=seeded.dataset_id)
        assert dataset is not None
        statistics = dataset.statistics
        repo.set_dataset_validation(
            session, dataset_id=seeded.dataset_id, status="invalid", force=True
        )
    try:
        job_id = _job(ctx, seeded, distill_spec(seeded.dataset_id, seeded.teacher_id))
        assert execute_job(ctx, job_id) == "failed"
    finally:
        with session_scope(ctx.sessions) as session:
            repo.set_dataset_validation(
                session,
                dataset_id=seeded.dataset_id,
                status="ready",
                statistics=statistics,
                force=True,
            )
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None and job.state == "failed"
        assert job.error == f"data.dataset_id: dataset {seeded.dataset_id} is invalid, not ready"
        messages = [e.message for e in repo.list_events(session, job_id=job_id)]
    assert any(m.startswith("Job failed: data.dataset_id") for m in messages), messages


def test_a_teacher_of_other_classes_fails_naming_both(
    embedded: tuple[WorkerContext, Seeded], tmp_path: Path
) -> None:
    ctx, seeded = embedded
    with session_scope(ctx.sessions) as session:
        teacher = repo.teacher_by_id(session, teacher_id=seeded.teacher_id)
        assert teacher is not None and teacher.num_classes is not None
        right = teacher.num_classes
        teacher.num_classes = right + 3
    try:
        job_id = _job(ctx, seeded, distill_spec(seeded.dataset_id, seeded.teacher_id))
        assert execute_job(ctx, job_id) == "failed"
    finally:
        with session_scope(ctx.sessions) as session:
            teacher = repo.teacher_by_id(session, teacher_id=seeded.teacher_id)
            assert teacher is not None
            teacher.num_classes = right
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None and job.error is not None
        assert f"teacher {seeded.teacher_id} predicts {right + 2} categories" in job.error


def _failed_error(ctx: WorkerContext, job_id: int) -> str:
    """Run the job, which must fail; its error."""
    assert execute_job(ctx, job_id) == "failed"
    with session_scope(ctx.sessions) as session:
        job = repo.job_by_id(session, job_id=job_id)
        assert job is not None and job.error is not None
        return job.error


def test_a_class_map_the_dataset_does_not_fit_fails_naming_the_class(
    embedded: tuple[WorkerContext, Seeded],
) -> None:
    ctx, seeded = embedded
    spec = distill_spec(seeded.dataset_id, seeded.teacher_id)
    spec["data"]["classes"] = {"merge": {"low": ["zero", "nine"]}}  # type: ignore[index]
    error = _failed_error(ctx, _job(ctx, seeded, spec))
    assert error.startswith("data.classes.merge.low: the dataset has no class 'nine'")
    assert "the dataset's classes are ['zero', 'one', 'two', 'three', 'four']" in error


def test_a_teacher_is_checked_against_the_mapped_classes(
    embedded: tuple[WorkerContext, Seeded],
) -> None:
    ctx, seeded = embedded
    with session_scope(ctx.sessions) as session:
        teacher = repo.teacher_by_id(session, teacher_id=seeded.teacher_id)
        assert teacher is not None and teacher.num_classes is not None
        classes = teacher.num_classes - 1
    spec = distill_spec(seeded.dataset_id, seeded.teacher_id)
    spec["data"]["classes"] = {"merge": {"low": ["zero", "one"]}}  # type: ignore[index]
    error = _failed_error(ctx, _job(ctx, seeded, spec))
    assert error.endswith(
        f"predicts {classes} categories but dataset {seeded.dataset_id} has {classes - 1} "
        "under data.classes"
    )

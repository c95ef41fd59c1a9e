"""Jobs, datasets, teachers and artifacts: team scoping, listing, cancel, retry, delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from store import repositories as repo
from store.models import Job
from tests.platform_fixtures import TeamContext

SPEC = {"kind": "distill", "data": {"dataset_id": 1}}


def _job(session: Session, team: TeamContext, name: str = "", **kwargs: object) -> Job:
    return repo.create_job(
        session,
        team_id=team.team_id,
        created_by=team.user_id,
        kind=str(kwargs.pop("kind", "distill")),
        spec=SPEC,
        spec_hash="abc123",
        name=name,
        **kwargs,  # type: ignore[arg-type]
    )


def test_other_teams_rows_are_not_found(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    mine, theirs = team_factory(), team_factory()
    dataset = repo.create_dataset(
        session, team_id=theirs.team_id, created_by=theirs.user_id, name="d", archive_key="k"
    )
    teacher = repo.create_teacher(
        session,
        team_id=theirs.team_id,
        created_by=theirs.user_id,
        name="t",
        arch="retinanet_resnet18_fpn",
        checkpoint_key="c",
    )
    job = _job(session, theirs, dataset_id=dataset.id, teacher_id=teacher.id)
    repo.add_artifact(session, job_id=job.id, kind="report", name="report.md", key="jobs/r.md")

    assert repo.get_job(session, team_id=mine.team_id, job_id=job.id) is None
    assert repo.get_dataset(session, team_id=mine.team_id, dataset_id=dataset.id) is None
    assert repo.get_teacher(session, team_id=mine.team_id, teacher_id=teacher.id) is None
    assert repo.get_artifact(session, team_id=mine.team_id, job_id=job.id, name="report.md") is None
    assert repo.list_artifacts(session, team_id=mine.team_id, job_id=job.id) == []
    assert repo.list_jobs(session, team_id=mine.team_id) == ([], 0)
    assert repo.request_cancel(session, team_id=mine.team_id, job_id=job.id) is None
    assert repo.delete_job(session, team_id=mine.team_id, job_id=job.id) is None
    assert repo.get_jobs(session, team_id=mine.team_id, job_ids=[job.id]) == []

    found = repo.get_job(session, team_id=theirs.team_id, job_id=job.id)
    assert found is not None and found.state == "queued" and found.attempt == 0
    assert found.creator is not None and found.creator.email == theirs.email
    assert repo.get_artifact(session, team_id=theirs.team_id, job_id=job.id, name="report.md")


def test_list_jobs_filters_search_and_pages(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    other_user = team.add_member("member")
    jobs = [_job(session, team, name=f"run {i} 50%_ok") for i in range(5)]
    _job(session, team, name="teacher big", kind="teacher")
    repo.create_job(
        session, team_id=team.team_id, created_by=other_user.user_id, kind="distill", spec=SPEC
    )

    page, count = repo.list_jobs(session, team_id=team.team_id, limit=2, offset=1)
    assert count == 7 and len(page) == 2
    everything, _ = repo.list_jobs(session, team_id=team.team_id, limit=100)
    assert [j.id for j in everything] == sorted((j.id for j in everything), reverse=True)

    assert repo.list_jobs(session, team_id=team.team_id, kind="teacher")[1] == 1
    assert repo.list_jobs(session, team_id=team.team_id, created_by=other_user.user_id)[1] == 1
    found, n = repo.list_jobs(session, team_id=team.team_id, q="RUN 3")
    assert n == 1 and found[0].id == jobs[3].id
    # '%' and '_' are searched literally, not as LIKE wildcards.
    assert repo.list_jobs(session, team_id=team.team_id, q="50%_")[1] == 5
    assert repo.list_jobs(session, team_id=team.team_id, q="5_%")[1] == 0

    repo.request_cancel(session, team_id=team.team_id, job_id=jobs[0].id)
    assert repo.list_jobs(session, team_id=team.team_id, state="canceled")[1] == 1
    assert repo.list_jobs(session, team_id=team.team_id, state=["queued", "canceled"])[1] == 7


def test_cancel_retry_and_delete(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    queued = _job(session, team)
    session.commit()
    canceled = repo.request_cancel(session, team_id=team.team_id, job_id=queued.id)
    assert canceled is not None and canceled.state == "canceled"
    assert canceled.finished_at is not None
    # A canceled job cannot be claimed, only retried.
    assert repo.claim_job(session, job_id=queued.id, worker_id="w", lease_seconds=30) is None

    retried = repo.retry_job(session, team_id=team.team_id, job_id=queued.id, attempts=2)
    assert retried is not None and retried.state == "queued" and not retried.cancel_requested
    session.commit()
    with pytest.raises(repo.StateConflict):
        repo.retry_job(session, team_id=team.team_id, job_id=queued.id)

    running = repo.claim_job(session, job_id=queued.id, worker_id="w", lease_seconds=30)
    assert running is not None and running.state == "running"
    with pytest.raises(repo.StateConflict):
        repo.delete_job(session, team_id=team.team_id, job_id=queued.id)
    job = repo.request_cancel(session, team_id=team.team_id, job_id=queued.id)
    assert job is not None and job.state == "running" and job.cancel_requested
    assert repo.renew_lease(session, job_id=job.id, worker_id="w", lease_seconds=30) is False
    assert repo.finish_job(session, job_id=job.id, worker_id="w", state="canceled")

    repo.add_metric_points(session, job_id=job.id, points=[{"name": "lr", "value": 1, "step": 0}])
    repo.add_artifact(session, job_id=job.id, kind="log", name="log.txt", key="jobs/log.txt")
    deleted = repo.delete_job(session, team_id=team.team_id, job_id=job.id)
    session.commit()
    assert deleted is not None
    assert repo.get_job(session, team_id=team.team_id, job_id=job.id) is None
    assert repo.metric_series(session, job_id=job.id) == {}
    assert repo.list_events(session, job_id=job.id) == []


def test_dataset_and_teacher_lifecycle(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    dataset = repo.create_dataset(
        session, team_id=team.team_id, created_by=team.user_id, name="birds", archive_key="a.zip"
    )
    assert dataset.status == "validating"
    repo.set_dataset_validation(
        session, dataset_id=dataset.id, status="ready", statistics={"images": 3}, errors=[]
    )
    session.commit()
    session.expire_all()
    again = repo.get_dataset(session, team_id=team.team_id, dataset_id=dataset.id)
    assert again is not None and again.status == "ready" and again.statistics == {"images": 3}
    assert repo.list_datasets(session, team_id=team.team_id, status="ready")[1] == 1

    teacher = repo.create_teacher(
        session,
        team_id=team.team_id,
        created_by=team.user_id,
        name="big",
        arch="retinanet_resnet18_fpn",
        checkpoint_key="t.safetensors",
    )
    repo.set_teacher_validation(
        session, teacher_id=teacher.id, status="invalid", errors=[{"message": "missing keys"}]
    )
    teachers, n = repo.list_teachers(session, team_id=team.team_id, q="bi")
    assert n == 1 and teachers[0].errors == [{"message": "missing keys"}]

    job = _job(session, team, dataset_id=dataset.id, teacher_id=teacher.id)
    assert repo.delete_dataset(session, team_id=team.team_id, dataset_id=dataset.id) is not None
    assert repo.delete_teacher(session, team_id=team.team_id, teacher_id=teacher.id) is not None
    session.commit()
    session.expire_all()
    kept = repo.get_job(session, team_id=team.team_id, job_id=job.id)
    assert kept is not None and kept.dataset_id is None and kept.teacher_id is None


def test_artifacts_are_idempotent_on_name(
    team_factory: Callable[..., TeamContext], session: Session
) -> None:
    team = team_factory()
    job = _job(session, team)
    first = repo.add_artifact(
        session, job_id=job.id, kind="student_onnx", name="student.onnx", key="k1", size_bytes=1
    )
    second = repo.add_artifact(
        session, job_id=job.id, kind="student_onnx", name="student.onnx", key="k2", size_bytes=2
    )
    repo.add_artifact(session, job_id=job.id, kind="report", name="report.md", key="k3")
    session.commit()
    assert first.id == second.id
    listed = repo.list_artifacts(session, team_id=team.team_id, job_id=job.id)
    assert [(a.name, a.key) for a in listed] == [("report.md", "k3"), ("student.onnx", "k2")]
    assert all(a.team_id == team.team_id for a in listed)

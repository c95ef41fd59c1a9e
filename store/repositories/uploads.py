"""Datasets and teachers: uploaded files with a validation status, and the watchdog."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from store.models import (
    Dataset,
    Job,
    Teacher,
    utcnow,
)
from store.repositories.common import like_pattern, paged, scoped

UploadT = TypeVar("UploadT", Dataset, Teacher)


def _get_upload(
    session: Session, model: type[UploadT], team_id: int, row_id: int
) -> UploadT | None:
    stmt = scoped(select(model).where(model.id == row_id), model, team_id)
    return session.scalars(stmt).first()


def _list_uploads(
    session: Session,
    model: type[UploadT],
    team_id: int,
    status: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[UploadT], int]:
    stmt = scoped(select(model), model, team_id)
    if status is not None:
        stmt = stmt.where(model.status == status)
    if q:
        stmt = stmt.where(model.name.ilike(like_pattern(q), escape="\\"))
    return paged(session, stmt, (model.created_at.desc(), model.id.desc()), limit, offset)


def _set_validation(
    session: Session, model: type[UploadT], row_id: int, *, force: bool, **outcome: Any
) -> UploadT | None:
    # Only a row still validating takes an outcome (one conditional UPDATE): a validation that
    # finishes after the watchdog failed it, or a second delivery, changes nothing.
    condition = (
        [model.id == row_id] if force else [model.id == row_id, model.status == "validating"]
    )
    result = session.execute(
        update(model)
        .where(*condition)
        .values(**outcome)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    row = session.get(model, row_id, populate_existing=True)
    return row


def _delete_upload(session: Session, row: UploadT | None) -> UploadT | None:
    if row is not None:
        session.delete(row)
        session.flush()
    return row


def named_row_id(
    session: Session, model: type[Dataset] | type[Teacher] | type[Job], *, team_id: int, name: str
) -> int | None:
    """The id of the team's first dataset, teacher or job called `name`, or None."""
    return session.scalars(
        select(model.id).where(model.team_id == team_id, model.name == name).order_by(model.id)
    ).first()


def unfinished_job_using(
    session: Session, *, dataset_id: int | None = None, teacher_id: int | None = None
) -> int | None:
    """The id of a queued or running job that uses this dataset or teacher, or None."""
    if (dataset_id is None) == (teacher_id is None):
        raise ValueError("name exactly one of dataset_id and teacher_id")
    column = Job.dataset_id if dataset_id is not None else Job.teacher_id
    row_id = dataset_id if dataset_id is not None else teacher_id
    return session.scalars(
        select(Job.id).where(column == row_id, Job.state.in_(("queued", "running")))
    ).first()


# --- datasets ----------------------------------------------------------------------------------


def create_dataset(
    session: Session,
    *,
    team_id: int,
    created_by: int | None,
    name: str,
    archive_key: str,
    format: str = "auto",
    size_bytes: int = 0,
    sha256: str = "",
) -> Dataset:
    """A new dataset row, `validating` until the validation task has run."""
    dataset = Dataset(
        team_id=team_id,
        created_by=created_by,
        name=name,
        format=format,
        status="validating",
        archive_key=archive_key,
        size_bytes=size_bytes,
        sha256=sha256,
    )
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, *, team_id: int, dataset_id: int) -> Dataset | None:
    """The team's dataset with this id, or None (also for another team's dataset)."""
    return _get_upload(session, Dataset, team_id, dataset_id)


def list_datasets(
    session: Session,
    *,
    team_id: int,
    status: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Dataset], int]:
    """A page of the team's datasets, newest first, and the total count."""
    return _list_uploads(session, Dataset, team_id, status, q, limit, offset)


def dataset_by_id(session: Session, *, dataset_id: int) -> Dataset | None:
    """A dataset by id whatever its team: for workers, which act for the team that queued it."""
    return session.get(Dataset, dataset_id)


def set_dataset_validation(
    session: Session,
    *,
    dataset_id: int,
    status: str,
    statistics: dict[str, Any] | None = None,
    errors: list[Any] | None = None,
    force: bool = False,
) -> Dataset | None:
    """Record the outcome of validating a dataset (`ready` or `invalid`); None if not recorded.

    Only a dataset still `validating` takes it, unless `force` (an operator's correction).
    """
    return _set_validation(
        session,
        Dataset,
        dataset_id,
        force=force,
        status=status,
        statistics=statistics,
        errors=errors,
    )


def delete_dataset(session: Session, *, team_id: int, dataset_id: int) -> Dataset | None:
    """Delete the team's dataset (its jobs keep a null dataset_id); its row or None."""
    return _delete_upload(session, _get_upload(session, Dataset, team_id, dataset_id))


# --- teachers ----------------------------------------------------------------------------------


def create_teacher(
    session: Session,
    *,
    team_id: int,
    created_by: int | None,
    name: str,
    arch: str,
    checkpoint_key: str | None,
    fpn_channels: int = 256,
    num_classes: int | None = None,
    size_bytes: int = 0,
    sha256: str = "",
    source_job_id: int | None = None,
    status: str = "validating",
) -> Teacher:
    """A new teacher row, `validating` until its checkpoint was checked (or `ready`)."""
    teacher = Teacher(
        team_id=team_id,
        created_by=created_by,
        name=name,
        arch=arch,
        checkpoint_key=checkpoint_key,
        fpn_channels=fpn_channels,
        num_classes=num_classes,
        size_bytes=size_bytes,
        sha256=sha256,
        source_job_id=source_job_id,
        status=status,
    )
    session.add(teacher)
    session.flush()
    return teacher


def get_teacher(session: Session, *, team_id: int, teacher_id: int) -> Teacher | None:
    """The team's teacher with this id, or None (also for another team's teacher)."""
    return _get_upload(session, Teacher, team_id, teacher_id)


def list_teachers(
    session: Session,
    *,
    team_id: int,
    status: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Teacher], int]:
    """A page of the team's teachers, newest first, and the total count."""
    return _list_uploads(session, Teacher, team_id, status, q, limit, offset)


def teacher_by_id(session: Session, *, teacher_id: int) -> Teacher | None:
    """A teacher by id whatever its team: for workers."""
    return session.get(Teacher, teacher_id)


def set_teacher_validation(
    session: Session,
    *,
    teacher_id: int,
    status: str,
    errors: list[Any] | None = None,
    info: dict[str, Any] | None = None,
    num_classes: int | None = None,
    force: bool = False,
) -> Teacher | None:
    """Record the outcome of checking a teacher checkpoint; None if not recorded.

    Only a teacher still `validating` takes it, unless `force` (an operator's correction).
    """
    # num_classes stays as it was when the check could not read it
    learned = {} if num_classes is None else {"num_classes": num_classes}
    return _set_validation(
        session,
        Teacher,
        teacher_id,
        force=force,
        status=status,
        errors=errors,
        info=info,
        **learned,
    )


def delete_teacher(session: Session, *, team_id: int, teacher_id: int) -> Teacher | None:
    """Delete the team's teacher; its row or None."""
    return _delete_upload(session, _get_upload(session, Teacher, team_id, teacher_id))


def fail_stale_validations(
    session: Session, *, older_than: datetime, message: str, now: datetime | None = None
) -> dict[str, list[int]]:
    """Mark invalid (with `message`) the uploads still validating since before `older_than`.

    One conditional UPDATE per table (datasets by `updated_at`, teachers by `created_at`,
    their only timestamp), so a validation finishing meanwhile keeps its own outcome; commits.
    Returns the ids failed, as {"datasets": [...], "teachers": [...]}.
    """
    now = now or utcnow()
    errors = [{"file": None, "image_id": None, "annotation_id": None, "message": message}]
    datasets = session.scalars(
        update(Dataset)
        .where(Dataset.status == "validating", Dataset.updated_at < older_than)
        .values(status="invalid", errors=errors, statistics=None, updated_at=now)
        .returning(Dataset.id)
        .execution_options(synchronize_session=False)
    ).all()
    teachers = session.scalars(
        update(Teacher)
        .where(Teacher.status == "validating", Teacher.created_at < older_than)
        .values(status="invalid", errors=errors)
        .returning(Teacher.id)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    for model, ids in ((Dataset, datasets), (Teacher, teachers)):
        for row_id in ids:  # bulk UPDATEs bypass the identity map: loaded rows must reload
            row = session.identity_map.get(identity_key(model, row_id))
            if row is not None:
                session.expire(row)
    return {"datasets": sorted(datasets), "teachers": sorted(teachers)}


def teacher_made_by_job(session: Session, *, job_id: int) -> int | None:
    """The id of the teacher a teacher job registered, or None."""
    return session.scalar(select(Teacher.id).where(Teacher.source_job_id == job_id))

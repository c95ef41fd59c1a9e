"""Keyword-only queries and commands on the platform's tables, shared by the API and the worker.

Transactions: functions flush and leave the commit to the caller (`store.db.session_scope`),
except the lease functions (`claim_job`, `renew_lease`, `requeue_expired`, `finish_job`,
`set_progress`, `set_checkpoint`), which commit at once: other workers must see their effect.

Team scoping lives in `scoped`: every team-owned read goes through it, so another team's row
is simply not found (None), never an error that reveals it exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Result, Select, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from store.models import (
    ROLES,
    TERMINAL_JOB_STATES,
    ApiToken,
    Artifact,
    Dataset,
    Job,
    JobEvent,
    Membership,
    MetricPoint,
    Teacher,
    Team,
    User,
    utcnow,
)
from store.tokens import generate_token, hash_password, hash_token, token_prefix, verify_password

TeamOwned = type[Job] | type[Dataset] | type[Teacher] | type[Artifact]

# last_used_at is bookkeeping: writing it on every request would serialise SQLite writers.
TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)


class StateConflict(ValueError):
    """An operation that the row's current state does not allow (HTTP 409)."""


class AlreadyExists(ValueError):
    """A row with the same unique name already exists (HTTP 409)."""


def scoped(stmt: Select[Any], model: TeamOwned, team_id: int) -> Select[Any]:
    """`stmt` restricted to the rows of `model` that belong to `team_id`, read afresh."""
    # populate_existing: workers change rows with bulk UPDATEs in other sessions; a read must
    # show the database, not an object this session loaded earlier.
    return stmt.where(model.team_id == team_id).execution_options(populate_existing=True)


# --- users, teams, memberships, tokens --------------------------------------------------------


def _normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session, *, email: str, name: str = "", password: str | None = None
) -> User:
    """A new user; the password (if any) is stored as a scrypt hash."""
    email = _normalise_email(email)
    if "@" not in email:
        raise ValueError(f"email: {email!r} is not an e-mail address")
    if get_user_by_email(session, email=email) is not None:
        raise AlreadyExists(f"email: a user {email} already exists")
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password) if password else None,
        is_active=True,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, user_id: int, password: str) -> None:
    """Replace a user's password."""
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(f"user {user_id} not found")
    user.password_hash = hash_password(password)
    session.flush()


def get_user(session: Session, *, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def get_user_by_email(session: Session, *, email: str) -> User | None:
    """The user with this e-mail address (case-insensitive), or None."""
    return session.scalars(select(User).where(User.email == _normalise_email(email))).first()


def authenticate(session: Session, *, email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    user = get_user_by_email(session, email=email)
    if user is None or not user.is_active or not verify_password(password, user.password_hash):
        return None
    return user


def create_team(session: Session, *, name: str) -> Team:
    """A new team with a unique name."""
    name = name.strip()
    if not name:
        raise ValueError("name: a team needs a name")
    if get_team_by_name(session, name=name) is not None:
        raise AlreadyExists(f"name: a team {name!r} already exists")
    team = Team(name=name)
    session.add(team)
    session.flush()
    return team


def get_team(session: Session, *, team_id: int) -> Team | None:
    """The team with this id, or None."""
    return session.get(Team, team_id)


def get_team_by_name(session: Session, *, name: str) -> Team | None:
    """The team with this name, or None."""
    return session.scalars(select(Team).where(Team.name == name.strip())).first()


def add_member(session: Session, *, team_id: int, user_id: int, role: str = "member") -> Membership:
    """Make a user a member of a team with `role`, or change the role of a member."""
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    membership = session.scalars(
        select(Membership).where(Membership.team_id == team_id, Membership.user_id == user_id)
    ).first()
    if membership is None:
        membership = Membership(team_id=team_id, user_id=user_id, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


def remove_member(session: Session, *, team_id: int, user_id: int) -> bool:
    """Remove a user from a team; False when they were not a member."""
    membership = session.scalars(
        select(Membership).where(Membership.team_id == team_id, Membership.user_id == user_id)
    ).first()
    if membership is None:
        return False
    session.delete(membership)
    session.flush()
    return True


def role_in_team(session: Session, *, team_id: int, user_id: int) -> str | None:
    """The user's role in the team, or None when they are not a member."""
    return session.scalars(
        select(Membership.role).where(Membership.team_id == team_id, Membership.user_id == user_id)
    ).first()


def teams_of_user(session: Session, *, user_id: int) -> list[tuple[Team, str]]:
    """The user's teams with their role in each, oldest membership first."""
    rows = session.execute(
        select(Team, Membership.role)
        .join(Membership, Membership.team_id == Team.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.id)
    ).all()
    return [(team, role) for team, role in rows]


def create_token(session: Session, *, user_id: int, name: str = "") -> tuple[str, ApiToken]:
    """A new API token: the plaintext (show it once) and its row (which keeps only a hash)."""
    token = generate_token()
    row = ApiToken(
        user_id=user_id, name=name, token_hash=hash_token(token), prefix=token_prefix(token)
    )
    session.add(row)
    session.flush()
    return token, row


def user_for_token(session: Session, *, token: str, now: datetime | None = None) -> User | None:
    """The active user a live token belongs to (noting when it was used), or None.

    Noting the use is an UPDATE in the caller's transaction: commit soon, since SQLite holds
    its write lock until then.
    """
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    now = now or utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        session.flush()
    return user


def list_tokens(session: Session, *, user_id: int) -> list[ApiToken]:
    """A user's tokens (hashes and prefixes only), newest first."""
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(session: Session, *, user_id: int, token_id: int) -> bool:
    """Revoke one of the user's tokens; False when the user has no such token."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user_id:
        return False
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return True


# --- datasets and teachers alike: uploaded files with a validation status --------------------

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
        stmt = stmt.where(model.name.ilike(_like_pattern(q), escape="\\"))
    return _page(session, stmt, (model.created_at.desc(), model.id.desc()), limit, offset)


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


# --- jobs --------------------------------------------------------------------------------------


def create_job(
    session: Session,
    *,
    team_id: int,
    created_by: int | None,
    kind: str,
    spec: dict[str, Any],
    spec_hash: str = "",
    name: str = "",
    dataset_id: int | None = None,
    teacher_id: int | None = None,
    max_attempts: int = 3,
) -> Job:
    """A new `queued` job; the caller commits, then sends `distillery.run_job(job_id)`."""
    job = Job(
        team_id=team_id,
        created_by=created_by,
        kind=kind,
        spec=spec,
        spec_hash=spec_hash,
        name=name,
        dataset_id=dataset_id,
        teacher_id=teacher_id,
        state="queued",
        attempt=0,
        max_attempts=max_attempts,
        cancel_requested=False,
    )
    session.add(job)
    session.flush()
    add_event(session, job_id=job.id, message="Job queued.")
    return job


def get_job(session: Session, *, team_id: int, job_id: int) -> Job | None:
    """The team's job with this id, or None (also for another team's job)."""
    return session.scalars(scoped(select(Job).where(Job.id == job_id), Job, team_id)).first()


def get_jobs(session: Session, *, team_id: int, job_ids: Sequence[int]) -> list[Job]:
    """The team's jobs among `job_ids`, in the order asked (others' and unknown ids omitted)."""
    found = {
        job.id: job
        for job in session.scalars(scoped(select(Job).where(Job.id.in_(job_ids)), Job, team_id))
    }
    return [found[i] for i in job_ids if i in found]


def job_by_id(session: Session, *, job_id: int) -> Job | None:
    """A job by id whatever its team: for workers, which act for the team that queued it."""
    return session.get(Job, job_id, populate_existing=True)


def list_jobs(
    session: Session,
    *,
    team_id: int,
    state: str | Sequence[str] | None = None,
    kind: str | None = None,
    dataset_id: int | None = None,
    created_by: int | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """A page of the team's jobs, newest first, filtered, and the total count of the filter."""
    stmt = scoped(select(Job), Job, team_id)
    if state is not None:
        states = [state] if isinstance(state, str) else list(state)
        stmt = stmt.where(Job.state.in_(states))
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    if dataset_id is not None:
        stmt = stmt.where(Job.dataset_id == dataset_id)
    if created_by is not None:
        stmt = stmt.where(Job.created_by == created_by)
    if q:
        stmt = stmt.where(Job.name.ilike(_like_pattern(q), escape="\\"))
    return _page(session, stmt, (Job.created_at.desc(), Job.id.desc()), limit, offset)


def request_cancel(session: Session, *, team_id: int, job_id: int) -> Job | None:
    """Cancel a job: a queued one at once, a running one cooperatively; None if not found.

    A finished job is returned unchanged.
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    now = utcnow()
    # Conditional updates: a worker may claim or finish the job between our read and write.
    canceled_now = _rowcount(
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(
                state="canceled",
                cancel_requested=True,
                finished_at=now,
                updated_at=now,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    if canceled_now:
        add_event(session, job_id=job_id, message="Job canceled before it started.")
    else:
        requested = _rowcount(
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "running", Job.cancel_requested.is_(False))
                .values(cancel_requested=True, updated_at=now)
                .execution_options(synchronize_session=False)
            )
        )
        if requested:
            add_event(session, job_id=job_id, message="Cancellation requested.")
    session.flush()
    session.refresh(job)
    return job


def retry_job(session: Session, *, team_id: int, job_id: int, attempts: int = 3) -> Job | None:
    """Queue a failed or canceled job again with `attempts` more tries; None if not found.

    Raises StateConflict for a job that is queued, running or succeeded. The caller commits,
    then sends `distillery.run_job(job_id)`. The last checkpoint is kept: the new attempt
    resumes from it.
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    if job.state not in ("failed", "canceled"):
        raise StateConflict(f"job {job_id} is {job.state}; only failed or canceled jobs retry")
    now = utcnow()
    job.state = "queued"
    job.cancel_requested = False
    job.error = None
    job.worker_id = None
    job.lease_expires_at = None
    job.heartbeat_at = None
    job.finished_at = None
    job.max_attempts = job.attempt + attempts
    job.updated_at = now
    session.flush()
    add_event(session, job_id=job_id, message="Job queued again (retry).")
    return job


# `retry` is the name the platform issue uses; both spellings refer to one function.
retry = retry_job


def delete_job(session: Session, *, team_id: int, job_id: int) -> Job | None:
    """Delete the team's job with its metrics, events and artifact rows; its row or None.

    Raises StateConflict while the job runs (cancel it first). Blobs are the caller's to
    delete (list the artifacts before).
    """
    job = get_job(session, team_id=team_id, job_id=job_id)
    if job is None:
        return None
    if job.state == "running":
        raise StateConflict(f"job {job_id} is running; cancel it first")
    # Bulk deletes: the ORM would load every metric point to delete it one by one.
    for model in (MetricPoint, JobEvent, Artifact):
        session.execute(
            model.__table__.delete().where(model.__table__.c.job_id == job_id)  # type: ignore[attr-defined]
        )
    session.execute(
        update(Teacher).where(Teacher.source_job_id == job_id).values(source_job_id=None)
    )
    session.delete(job)
    session.flush()
    return job


# --- leases: the job row decides which worker runs a job ---------------------------------------


def claim_job(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> Job | None:
    """Take the job for `worker_id` (commits); None if a live lease holds it or it is finished.

    A queued job, or a running one whose lease expired (attempts left), is claimed by one
    atomic UPDATE: of two workers racing, exactly one gets the row.
    """
    now = now or utcnow()
    claimable = or_(
        Job.state == "queued",
        (Job.state == "running") & (Job.lease_expires_at < now) & (Job.attempt < Job.max_attempts),
    )
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, claimable, Job.cancel_requested.is_(False))
        .values(
            state="running",
            worker_id=worker_id,
            attempt=Job.attempt + 1,
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Job.started_at, now),
            error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    _forget_job(session, job_id)
    if _rowcount(result) != 1:
        session.commit()
        return None
    job = session.get(Job, job_id, populate_existing=True)
    if job is not None:
        # In the claim's own transaction: the event exists if and only if the claim does.
        add_event(
            session,
            job_id=job_id,
            message=f"Started on worker {worker_id} (attempt {job.attempt} of {job.max_attempts}).",
        )
    session.commit()
    return job


def renew_lease(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> bool:
    """Extend the worker's lease (commits); False if it lost the lease or cancel was requested."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.worker_id == worker_id,
            Job.state == "running",
            Job.cancel_requested.is_(False),
        )
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    _forget_job(session, job_id)
    session.commit()
    return _rowcount(result) == 1


def holds_lease(session: Session, *, job_id: int, worker_id: str) -> bool:
    """Whether `worker_id` still holds the running job's lease (cancellation aside)."""
    row = session.execute(
        select(Job.id).where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
    ).first()
    return row is not None


def cancel_requested(session: Session, *, job_id: int) -> bool:
    """Whether someone asked to cancel the job (True also for a vanished job)."""
    value = session.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar()
    return True if value is None else bool(value)


def set_progress(
    session: Session, *, job_id: int, worker_id: str, progress: dict[str, Any]
) -> bool:
    """Store the running job's progress (commits); False when the worker lost the lease."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
        .values(progress=progress, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _forget_job(session, job_id)
    session.commit()
    return _rowcount(result) == 1


def set_checkpoint(session: Session, *, job_id: int, worker_id: str, key: str) -> bool:
    """Record the blob key of the job's latest checkpoint (commits); False without the lease."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
        .values(checkpoint_key=key, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _forget_job(session, job_id)
    session.commit()
    return _rowcount(result) == 1


def finish_job(
    session: Session,
    *,
    job_id: int,
    worker_id: str,
    state: str,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Move the worker's running job to a terminal state (commits); False without the lease."""
    if state not in TERMINAL_JOB_STATES:
        raise ValueError(f"state: {state!r} is not one of {', '.join(TERMINAL_JOB_STATES)}")
    now = now or utcnow()
    values: dict[str, Any] = {
        "state": state,
        "error": error,
        "finished_at": now,
        "lease_expires_at": None,
        "updated_at": now,
    }
    if metrics is not None:
        values["metrics"] = metrics
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    _forget_job(session, job_id)
    finished = _rowcount(result) == 1
    if finished:
        message = {
            "succeeded": "Job succeeded.",
            "canceled": "Job canceled.",
            "failed": f"Job failed: {error}" if error else "Job failed.",
        }[state]
        add_event(
            session, job_id=job_id, message=message, level="error" if state == "failed" else "info"
        )
    session.commit()
    return finished


def requeue_expired(session: Session, *, now: datetime | None = None) -> list[int]:
    """Re-queue running jobs whose lease expired (commits); the ids to send again.

    A job without attempts left is marked failed with the reason; one whose cancellation was
    requested is marked canceled.
    """
    now = now or utcnow()
    expired = session.execute(
        select(Job.id, Job.attempt, Job.max_attempts, Job.worker_id, Job.cancel_requested).where(
            Job.state == "running", Job.lease_expires_at < now
        )
    ).all()
    requeued: list[int] = []
    for job_id, attempt, max_attempts, worker_id, cancel in expired:
        still_expired = (Job.id == job_id, Job.state == "running", Job.lease_expires_at < now)
        released = {"worker_id": None, "lease_expires_at": None, "updated_at": now}
        lost = f"worker {worker_id} stopped renewing its lease"
        if cancel:
            values = {**released, "state": "canceled", "finished_at": now}
            message, level = f"Job canceled ({lost}).", "info"
        elif attempt < max_attempts:
            values = {**released, "state": "queued"}
            message = f"Re-queued: {lost} during attempt {attempt} of {max_attempts}."
            level = "warning"
        else:
            reason = f"{lost}; no attempts left ({attempt} of {max_attempts})"
            values = {**released, "state": "failed", "finished_at": now, "error": reason}
            message, level = f"Job failed: {reason}.", "error"
        # Conditional again: the worker may have renewed or finished since the select.
        result = session.execute(
            update(Job)
            .where(*still_expired)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        _forget_job(session, job_id)
        if _rowcount(result) == 1:
            add_event(session, job_id=job_id, message=message, level=level)
            if values["state"] == "queued":
                requeued.append(job_id)
        session.commit()
    return requeued


def stale_queued_jobs(session: Session, *, older_than: datetime) -> list[int]:
    """Ids of jobs still queued since before `older_than` (their broker message may be lost)."""
    return list(
        session.scalars(
            select(Job.id)
            .where(Job.state == "queued", Job.updated_at < older_than)
            .order_by(Job.id)
        )
    )


def take_stale_queued_jobs(
    session: Session, *, older_than: datetime, now: datetime | None = None
) -> list[int]:
    """Stale queued jobs, each marked as sent again now (commits); the ids to send.

    Marking bounds the resends to one per staleness period, however long a job waits; a
    duplicate message is harmless because the lease drops it.
    """
    now = now or utcnow()
    taken: list[int] = []
    for job_id in stale_queued_jobs(session, older_than=older_than):
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued", Job.updated_at < older_than)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) == 1:
            taken.append(job_id)
    session.commit()
    return taken


# --- metric points ----------------------------------------------------------------------------


def add_metric_points(session: Session, *, job_id: int, points: Iterable[Mapping[str, Any]]) -> int:
    """Insert many points `{name, value, step, epoch?}` in one statement; the number stored.

    Non-finite values are skipped: SQLite stores NaN as NULL and JSON cannot carry it.
    """
    now = utcnow()
    rows = [
        {
            "job_id": job_id,
            "name": str(p["name"]),
            "value": float(p["value"]),
            "step": int(p["step"]),
            "epoch": int(p.get("epoch", 0)),
            "created_at": now,
        }
        for p in points
        if math.isfinite(float(p["value"]))
    ]
    if rows:
        session.execute(MetricPoint.__table__.insert(), rows)  # type: ignore[attr-defined]
    return len(rows)


def metric_points(
    session: Session,
    *,
    job_id: int,
    names: Sequence[str] | None = None,
    since_id: int | None = None,
    limit: int | None = None,
) -> list[MetricPoint]:
    """The job's points in insertion order, optionally only some series or only newer ids."""
    stmt = select(MetricPoint).where(MetricPoint.job_id == job_id)
    if names:
        stmt = stmt.where(MetricPoint.name.in_(list(names)))
    if since_id is not None:
        stmt = stmt.where(MetricPoint.id > since_id)
    stmt = stmt.order_by(MetricPoint.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def metric_series(
    session: Session,
    *,
    job_id: int,
    names: Sequence[str] | None = None,
    since_id: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The job's series `{name: [{step, epoch, value}, ...]}`, each ordered by step."""
    stmt = select(MetricPoint.name, MetricPoint.step, MetricPoint.epoch, MetricPoint.value).where(
        MetricPoint.job_id == job_id
    )
    if names:
        stmt = stmt.where(MetricPoint.name.in_(list(names)))
    if since_id is not None:
        stmt = stmt.where(MetricPoint.id > since_id)
    series: dict[str, list[dict[str, Any]]] = {}
    for name, step, epoch, value in session.execute(
        stmt.order_by(MetricPoint.name, MetricPoint.step, MetricPoint.id)
    ):
        series.setdefault(name, []).append({"step": step, "epoch": epoch, "value": value})
    return series


def metric_names(session: Session, *, job_id: int) -> list[str]:
    """The names of the job's series, sorted."""
    stmt = select(MetricPoint.name).where(MetricPoint.job_id == job_id).distinct()
    return sorted(session.scalars(stmt))


# --- job events -------------------------------------------------------------------------------


def add_event(session: Session, *, job_id: int, message: str, level: str = "info") -> JobEvent:
    """Append a log line or state change, in words a user understands, to the job's events."""
    event = JobEvent(job_id=job_id, message=message, level=level)
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session, *, job_id: int, since_id: int | None = None, limit: int | None = None
) -> list[JobEvent]:
    """The job's events in order, optionally only those after `since_id`."""
    stmt = select(JobEvent).where(JobEvent.job_id == job_id)
    if since_id is not None:
        stmt = stmt.where(JobEvent.id > since_id)
    stmt = stmt.order_by(JobEvent.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


# --- artifacts ---------------------------------------------------------------------------------


def add_artifact(
    session: Session,
    *,
    job_id: int,
    kind: str,
    name: str,
    key: str,
    size_bytes: int = 0,
    sha256: str = "",
    content_type: str = "application/octet-stream",
) -> Artifact:
    """Record a file the job produced; adding the same name again updates the row."""
    job = session.get(Job, job_id)
    if job is None:
        raise LookupError(f"job {job_id} not found")
    artifact = session.scalars(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)
    ).first()
    if artifact is None:
        artifact = Artifact(team_id=job.team_id, job_id=job_id, name=name)
        session.add(artifact)
    artifact.kind = kind
    artifact.key = key
    artifact.size_bytes = size_bytes
    artifact.sha256 = sha256
    artifact.content_type = content_type
    session.flush()
    return artifact


def list_artifacts(session: Session, *, team_id: int, job_id: int) -> list[Artifact]:
    """The team's job's artifacts by name (empty for another team's job)."""
    stmt = scoped(select(Artifact).where(Artifact.job_id == job_id), Artifact, team_id)
    return list(session.scalars(stmt.order_by(Artifact.kind, Artifact.name)))


def get_artifact(session: Session, *, team_id: int, job_id: int, name: str) -> Artifact | None:
    """The team's job's artifact called `name`, or None."""
    stmt = scoped(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name), Artifact, team_id
    )
    return session.scalars(stmt).first()


# --- helpers -----------------------------------------------------------------------------------


def _rowcount(result: Result[Any]) -> int:
    # UPDATE results are cursor results; the generic Result type does not show rowcount.
    return cast("CursorResult[Any]", result).rowcount


def _forget_job(session: Session, job_id: int) -> None:
    # Bulk UPDATEs bypass the identity map; a Job object loaded earlier must reload.
    job = session.identity_map.get(identity_key(Job, job_id))
    if job is not None:
        session.expire(job)


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page(
    session: Session, stmt: Select[Any], order: tuple[Any, ...], limit: int, offset: int
) -> tuple[list[Any], int]:
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = session.scalars(stmt.order_by(*order).limit(max(0, limit)).offset(max(0, offset)))
    return list(page.unique()), int(count)

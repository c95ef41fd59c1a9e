"""Job row -> core run: the only place where the platform and the engine meet."""

from __future__ import annotations

import logging
import mimetypes
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.engine.checkpoint import load_checkpoint
from core.engine.hooks import HookBase, MetricSinkHook, TrainingCanceled
from core.pipeline.run import run_job as run_core_job
from core.spec import ClassMapSpec, JobSpec, statistics_class_names
from store import repositories as repo
from store.blob_keys import job_artifact_key, job_teacher_key
from store.db import session_scope
from store.models import Dataset, Teacher
from worker.context import WorkerContext
from worker.hooks import CheckpointUploader, DbMetricSink, JobProgressHook
from worker.lease import LeaseKeeper
from worker.sweeps import trial_hooks
from worker.workspace import backbone_file, dataset_folder, sha256_of, teacher_file

log = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "canceled", "dropped", "lost"]

CONTENT_TYPES = {
    ".safetensors": "application/octet-stream",
    ".onnx": "application/octet-stream",
    ".pt": "application/octet-stream",
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".log": "text/plain; charset=utf-8",
}


class JobInputError(ValueError):
    """A job whose inputs (dataset, teacher) cannot be used; the message says which and why."""


PLATFORM_PATH_FIELDS: tuple[tuple[str, str], ...] = (
    ("data", "path"),
    ("teacher", "checkpoint"),
    ("teacher", "pretrained_backbone"),
    ("student", "checkpoint"),
    ("student", "pretrained_backbone"),
)
"""Spec fields that name a local file: only the runner fills them in (from uploaded rows)."""


def refuse_local_paths(spec: JobSpec) -> None:
    """JobInputError naming the first field of a platform spec that names a local file.

    The API refuses such specs already; this holds for rows written any other way. The
    message names the field, never the path: a job's error must not tell what exists on the
    worker.
    """
    for section, field in PLATFORM_PATH_FIELDS:
        part = getattr(spec, section)
        if part is not None and getattr(part, field) is not None:
            raise JobInputError(
                f"{section}.{field}: local paths are not allowed in platform jobs; files are "
                "referenced by the ids of the team's uploads (data.dataset_id, "
                "teacher.teacher_id, teacher.backbone_id, student.backbone_id)"
            )


@dataclass(frozen=True)
class ClaimedJob:
    """The fields of a claimed job row the run needs (no ORM object crosses sessions)."""

    id: int
    team_id: int
    created_by: int | None
    name: str
    kind: str
    spec: dict[str, Any]
    dataset_id: int | None
    teacher_id: int | None
    attempt: int
    max_attempts: int
    checkpoint_key: str | None


def user_message(exc: BaseException) -> str:
    """The reason a job failed, in words its owner can act on."""
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "CUDA out of memory" in str(exc):
        return "out of GPU memory: lower data.batch_size or data.image_size"
    if name == "SoftTimeLimitExceeded":
        return "the job ran past the worker's time limit"
    if isinstance(exc, MemoryError):
        return "out of memory: lower data.batch_size, data.image_size or data.num_workers"
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"a file the job needs is missing: {exc.filename or exc}"
    return f"internal error ({name}: {exc}); the worker log has the details"


def _claim(ctx: WorkerContext, job_id: int) -> ClaimedJob | None:
    with session_scope(ctx.sessions) as session:
        job = repo.claim_job(
            session,
            job_id=job_id,
            worker_id=ctx.worker_id,
            lease_seconds=ctx.settings.lease_seconds,
        )
        if job is None:
            return None
        return ClaimedJob(
            id=job.id,
            team_id=job.team_id,
            created_by=job.created_by,
            name=job.name,
            kind=job.kind,
            spec=dict(job.spec),
            dataset_id=job.dataset_id,
            teacher_id=job.teacher_id,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            checkpoint_key=job.checkpoint_key,
        )


def _event(ctx: WorkerContext, job_id: int, message: str, level: str = "info") -> None:
    with session_scope(ctx.sessions) as session:
        repo.add_event(session, job_id=job_id, message=message, level=level)


def _load_inputs(
    ctx: WorkerContext, job: ClaimedJob, spec: JobSpec
) -> tuple[Dataset, Teacher | None]:
    dataset_id = job.dataset_id or spec.data.dataset_id
    teacher_id = job.teacher_id or (spec.teacher.teacher_id if spec.teacher else None)
    with session_scope(ctx.sessions) as session:
        dataset = repo.dataset_by_id(session, dataset_id=dataset_id) if dataset_id else None
        teacher = repo.teacher_by_id(session, teacher_id=teacher_id) if teacher_id else None
    if dataset is None or dataset.team_id != job.team_id:
        if dataset_id is None:
            raise JobInputError("data.dataset_id: a platform job needs a dataset")
        raise JobInputError(f"data.dataset_id: dataset {dataset_id} does not exist (deleted?)")
    if dataset.status != "ready":
        raise JobInputError(f"data.dataset_id: dataset {dataset_id} is {dataset.status}, not ready")
    if teacher_id is not None and (teacher is None or teacher.team_id != job.team_id):
        raise JobInputError(f"teacher.teacher_id: teacher {teacher_id} does not exist (deleted?)")
    if teacher is not None and teacher.status != "ready":
        raise JobInputError(
            f"teacher.teacher_id: teacher {teacher_id} is {teacher.status}, not ready"
        )
    return dataset, teacher


def _backbone_path(ctx: WorkerContext, job: ClaimedJob, section: str, backbone_id: int) -> str:
    """The local file of the team's ready backbone `backbone_id`, named in `section`."""
    field = f"{section}.backbone_id"
    with session_scope(ctx.sessions) as session:
        backbone = repo.backbone_by_id(session, backbone_id=backbone_id)
        if backbone is None or backbone.team_id != job.team_id:
            raise JobInputError(f"{field}: backbone {backbone_id} does not exist (deleted?)")
        if backbone.status != "ready":
            raise JobInputError(f"{field}: backbone {backbone_id} is {backbone.status}, not ready")
        return str(backbone_file(ctx, backbone))


def prepare_spec(ctx: WorkerContext, job: ClaimedJob) -> JobSpec:
    """The job's spec with local paths for its dataset, teacher and backbone weights filled in."""
    spec = JobSpec.model_validate(job.spec)
    refuse_local_paths(spec)
    dataset, teacher = _load_inputs(ctx, job, spec)
    data = spec.data.model_copy(
        update={
            "path": str(dataset_folder(ctx, dataset)),
            "dataset_id": dataset.id,
            "format": spec.data.format if spec.data.format != "auto" else dataset.format,
        }
    )
    update: dict[str, Any] = {"data": data}
    classes = _num_classes({}, dataset.statistics)
    if spec.data.classes is not None:
        classes = _mapped_num_classes(spec.data.classes, dataset.statistics)
    if teacher is not None and teacher.num_classes and classes and teacher.num_classes != classes:
        mapped = " under data.classes" if spec.data.classes is not None else ""
        raise JobInputError(
            f"teacher.teacher_id: teacher {teacher.id} predicts {teacher.num_classes - 1} "
            f"categories but dataset {dataset.id} has {classes - 1}{mapped}"
        )
    if teacher is not None and spec.teacher is not None:
        # The row's architecture is the one its checkpoint was validated against.
        update["teacher"] = spec.teacher.model_copy(
            update={
                "checkpoint": str(teacher_file(ctx, teacher)),
                "teacher_id": teacher.id,
                "arch": teacher.arch,
                "fpn_channels": teacher.fpn_channels,
            }
        )
    for section in ("teacher", "student"):
        part = update.get(section) or getattr(spec, section)
        if part is not None and part.backbone_id is not None:
            path = _backbone_path(ctx, job, section, part.backbone_id)
            update[section] = part.model_copy(update={"pretrained_backbone": path})
    return spec.model_copy(update=update)


def _resume_file(ctx: WorkerContext, job: ClaimedJob, workdir: Path) -> Path | None:
    if not job.checkpoint_key or not ctx.blobs.exists(job.checkpoint_key):
        return None
    path = workdir / "resume" / "last.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    ctx.blobs.download(job.checkpoint_key, path)
    try:
        epoch = load_checkpoint(path).get("epoch")
    except ValueError as exc:
        message = f"The last checkpoint cannot be used ({exc}); starting over."
        _event(ctx, job.id, message, "warning")
        return None
    _event(
        ctx,
        job.id,
        f"Resuming attempt {job.attempt} from the checkpoint saved after epoch {epoch}.",
    )
    return path


def _artifact_name(path: Path, out: Path) -> str:
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return path.name


def upload_artifacts(
    ctx: WorkerContext, job: ClaimedJob, out: Path, artifacts: list[Any]
) -> list[tuple[str, str, str]]:
    """Upload the run's files under `jobs/<id>/` and record them; (kind, name, key) each."""
    stored: list[tuple[str, str, str]] = []
    for artifact in artifacts:
        path = Path(artifact.path)
        if not path.is_file():
            continue
        name = _artifact_name(path, out)
        key = job_artifact_key(job.id, name)
        ctx.blobs.put_file(key, path)
        content_type = CONTENT_TYPES.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        with session_scope(ctx.sessions) as session:
            repo.add_artifact(
                session,
                job_id=job.id,
                kind=str(artifact.kind),
                name=name,
                key=key,
                size_bytes=path.stat().st_size,
                sha256=sha256_of(path),
                content_type=content_type,
            )
        stored.append((str(artifact.kind), name, key))
    return stored


def _num_classes(metrics: dict[str, Any], statistics: dict[str, Any] | None) -> int | None:
    # K + 1: the categories the run saw, else those the dataset's statistics counted.
    categories = (metrics.get("dataset") or {}).get("categories")
    if categories is None:
        categories = (statistics or {}).get("categories")
    if isinstance(categories, int):
        return categories + 1
    if isinstance(categories, list | dict):
        return len(categories) + 1
    return None


def _mapped_num_classes(classes: ClassMapSpec, statistics: dict[str, Any] | None) -> int | None:
    """K + 1 under the spec's `data.classes`, from the class names the dataset's statistics
    count (None if they name none); JobInputError if the mapping does not fit them."""
    from core.data.class_map import mapping_error

    names = statistics_class_names(statistics)
    if not names:
        return None  # the run checks the mapping when it opens the dataset
    problems = classes.problems(names)
    if problems:
        raise JobInputError(str(mapping_error(problems, names)))
    return len(classes.mapped_names(names)) + 1


def _register_teacher(
    ctx: WorkerContext,
    job: ClaimedJob,
    spec: JobSpec,
    artifacts: list[Any],
    metrics: dict[str, Any],
) -> None:
    """A teacher job's weights become a ready Teacher row, usable for distillation."""
    weights = next((Path(a.path) for a in artifacts if a.kind == "teacher_safetensors"), None)
    if weights is None or spec.teacher is None or not weights.is_file():
        raise RuntimeError("the teacher job produced no teacher_safetensors artifact")
    key = job_teacher_key(job.id, weights.name)
    ctx.blobs.put_file(key, weights)
    with session_scope(ctx.sessions) as session:
        # Idempotent: a re-run of the same job does not register a second teacher.
        if repo.teacher_made_by_job(session, job_id=job.id) is not None:
            return
        dataset = repo.dataset_by_id(session, dataset_id=spec.data.dataset_id or 0)
        teacher = repo.create_teacher(
            session,
            team_id=job.team_id,
            created_by=job.created_by,
            name=f"{job.name or f'job {job.id}'} (teacher)",
            arch=spec.teacher.arch,
            checkpoint_key=key,
            fpn_channels=spec.teacher.fpn_channels,
            num_classes=_num_classes(metrics, dataset.statistics if dataset else None),
            size_bytes=weights.stat().st_size,
            sha256=sha256_of(weights),
            source_job_id=job.id,
            status="ready",
        )
        teacher.info = {"source_job_id": job.id, "metrics": metrics}
        repo.add_event(session, job_id=job.id, message=f"Registered teacher {teacher.id}.")


def _run_claimed(
    ctx: WorkerContext, job: ClaimedJob, keeper: LeaseKeeper, workdir: Path
) -> Outcome:
    spec = prepare_spec(ctx, job)
    resume = _resume_file(ctx, job, workdir)
    out = workdir / "out"
    sink = DbMetricSink()
    progress = JobProgressHook(ctx, job.id, keeper=keeper, sink=sink)
    hooks: list[HookBase] = [MetricSinkHook(sink, every=spec.schedule.log_every), progress]
    trial = trial_hooks(ctx, job.id)  # a sweep's trial: val scores to its pruner
    hooks.extend(trial)
    result = run_core_job(
        spec,
        out,
        hooks=hooks,
        resume=resume,
        on_checkpoint=CheckpointUploader(ctx, job.id, progress=progress),
        # The trials of a sweep share one teacher and dataset: they share its features too.
        feature_cache_dir=ctx.settings.data_dir.resolve() / "teacher-features" if trial else None,
    )
    upload_artifacts(ctx, job, out, list(result.artifacts))
    metrics = dict(result.metrics)
    if job.kind == "teacher":
        _register_teacher(ctx, job, spec, list(result.artifacts), metrics)
    with session_scope(ctx.sessions) as session:
        finished = repo.finish_job(
            session, job_id=job.id, worker_id=ctx.worker_id, state="succeeded", metrics=metrics
        )
    return "succeeded" if finished else "lost"


def _without_scratch_paths(ctx: WorkerContext, message: str) -> str:
    """`message` with the worker's scratch folders cut off the file names it mentions."""
    root = re.escape(str(ctx.work_dir))
    return re.sub(
        root + r"/(teachers|datasets|jobs|backbones)/[^/\s]+/(attempt-\d+/)?", "", message
    )


def _stopped(ctx: WorkerContext, job: ClaimedJob, exc: TrainingCanceled) -> Outcome:
    with session_scope(ctx.sessions) as session:
        if not repo.holds_lease(session, job_id=job.id, worker_id=ctx.worker_id):
            log.warning("job %s: lease lost (%s); another worker owns it now", job.id, exc)
            return "lost"
        finished = repo.finish_job(
            session, job_id=job.id, worker_id=ctx.worker_id, state="canceled"
        )
    return "canceled" if finished else "lost"


def _failed(ctx: WorkerContext, job: ClaimedJob, exc: BaseException) -> Outcome:
    message = user_message(exc)
    # Users know their uploads by name, not by the worker's scratch paths.
    message = _without_scratch_paths(ctx, message)
    with session_scope(ctx.sessions) as session:
        finished = repo.finish_job(
            session, job_id=job.id, worker_id=ctx.worker_id, state="failed", error=message
        )
    return "failed" if finished else "lost"


def execute_job(ctx: WorkerContext, job_id: int) -> Outcome:
    """Run job `job_id` if this worker can take its lease; the outcome for the task's result."""
    job = _claim(ctx, job_id)
    if job is None:
        log.info("job %s: delivery dropped (finished, canceled or leased elsewhere)", job_id)
        return "dropped"
    log.info("job %s: attempt %s on %s", job.id, job.attempt, ctx.worker_id)
    keeper = LeaseKeeper(ctx, job.id).start()
    workdir = ctx.work_dir / "jobs" / str(job.id) / f"attempt-{job.attempt}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _run_claimed(ctx, job, keeper, workdir)
    except TrainingCanceled as exc:
        return _stopped(ctx, job, exc)
    except Exception as exc:
        log.exception("job %s failed", job.id)
        return _failed(ctx, job, exc)
    finally:
        keeper.stop()
        shutil.rmtree(workdir, ignore_errors=True)

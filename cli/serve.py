"""Commands `serve` (the API with an embedded worker) and `worker` (a Celery worker)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.settings import Settings

WORKER_STOP_GRACE_S = 10.0
API_WORKERS_ENV = "DISTILLERY_API_WORKERS"
API_APP = "api.main:create_app"
DEMO_TEAM = "demo"
DEMO_EMAIL = "admin@demo.local"
DEMO_PASSWORD = "distillery-demo"
DEMO_DATASET = "demo-synthetic"
DEMO_TEACHER = "demo-teacher"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `serve` and `worker` on the top-level parser."""
    serve = sub.add_parser(
        "serve",
        help="run the platform on this machine: API, dashboard and an embedded worker",
        description="Migrate the database, then run the API (uvicorn) and a Celery worker on "
        "the same settings (default: SQLite, a local blob folder and a serverless broker in "
        "DISTILLERY_DATA_DIR). Ctrl-C stops both.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--api-workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="API processes (uvicorn workers) sharing the port; default: "
        f"${API_WORKERS_ENV}, else min(4, cores) on a machine with 4 cores or more and 1 "
        f"below (here: {api_workers_for(usable_cores())})",
    )
    serve.add_argument("--no-worker", action="store_true", help="run the API only")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create a demo team, user and token, upload a synthetic dataset (and a teacher) "
        "and queue a job",
    )
    serve.add_argument(
        "--teacher",
        type=Path,
        help="teacher checkpoint for --demo (default: the one `distillery demo` produced)",
    )
    serve.add_argument(
        "--teacher-arch", default="retinanet_resnet18_fpn", help="architecture of --teacher"
    )
    serve.add_argument("--teacher-fpn-channels", type=int, default=None)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=_serve)

    worker = sub.add_parser(
        "worker",
        help="run a Celery worker for jobs and validations",
        description="Run a worker (one per GPU, concurrency 1) consuming the job queue and the "
        "validation queue on the settings' broker, with the lease reaper.",
    )
    worker.add_argument(
        "--queues", default=None, help="comma-separated queues (default: <job_queue>,default)"
    )
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument(
        "--pool", default="prefork", choices=("prefork", "solo", "threads"), help="Celery pool"
    )
    worker.add_argument("--hostname", default=None, help="Celery node name")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(handler=_worker)


def parse_workers(text: str) -> int:
    """A count of processes: a whole number from 1 (ValueError naming the value otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{value} is not 1 or more")
    return value


def _positive_int(text: str) -> int:
    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def api_workers_for(cores: int) -> int:
    """min(4, cores) on a machine with 4 cores or more, else 1 (on fewer cores the worker and
    the database need them)."""
    return min(4, cores) if cores >= 4 else 1


def default_api_workers() -> int:
    """API processes by default: `DISTILLERY_API_WORKERS` if set, else `api_workers_for` the
    usable cores. The compose file asks this function too, so `serve` and the team deployment
    agree. ValueError (naming the variable) for a value that is not a count.
    """
    configured = os.environ.get(API_WORKERS_ENV, "").strip()
    if configured:
        try:
            return parse_workers(configured)
        except ValueError as exc:
            raise ValueError(f"{API_WORKERS_ENV}: {exc}") from None
    return api_workers_for(usable_cores())


def worker_argv(
    settings: Settings,
    *,
    queues: str | None = None,
    concurrency: int = 1,
    pool: str = "prefork",
    hostname: str | None = None,
    log_level: str = "info",
) -> list[str]:
    """The `celery worker` arguments for the platform's worker."""
    queues = queues or f"{settings.job_queue},default"
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={log_level.upper()}",
        # Gossip, mingle and heartbeats need broadcast, which the serverless broker lacks;
        # leases in the database do their job.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    return argv


def _worker(args: argparse.Namespace) -> int:
    from store.settings import Settings
    from worker.celery_app import make_celery

    settings = Settings()
    app = make_celery(settings)
    if args.pool == "prefork":
        # Import the engine (not CUDA) once in the parent: each forked child then starts its
        # first job without paying for the torch import.
        import worker.runner  # noqa: F401
    app.worker_main(
        worker_argv(
            settings,
            queues=args.queues,
            concurrency=args.concurrency,
            pool=args.pool,
            hostname=args.hostname,
            log_level=args.log_level,
        )
    )
    return 0


def start_worker_process(settings: Settings, *, log_level: str = "info") -> subprocess.Popen[bytes]:
    """A `distillery worker` subprocess on `settings`, in its own process group."""
    env = dict(os.environ)
    env["DISTILLERY_DATA_DIR"] = str(settings.data_dir.resolve())
    env["DISTILLERY_DATABASE_URL"] = settings.resolved_database_url
    env["DISTILLERY_BROKER_URL"] = settings.resolved_broker_url
    command = [sys.executable, "-m", "cli.main", "worker", f"--log-level={log_level}"]
    # Its own session: Ctrl-C reaches only `serve`, which then stops the worker in order.
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop_worker_process(
    proc: subprocess.Popen[bytes], *, grace: float = WORKER_STOP_GRACE_S
) -> int:
    """Stop a worker: warm shutdown, then kill after `grace` seconds (its job resumes later)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            print(
                "worker: a job is still running; stopping it now (it resumes from its last "
                "checkpoint when the platform runs again)",
                file=sys.stderr,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return int(proc.returncode or 0)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Leave `serve` through its cleanup on SIGTERM, with the status a signal gives."""
    raise SystemExit(128 + signum)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from store.migrate import upgrade
    from store.settings import Settings
    from worker.celery_app import make_celery
    from worker.reaper import Reaper

    try:
        api_workers = args.api_workers or default_api_workers()
    except ValueError as exc:
        print(f"distillery serve: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    print(f"distillery: data in {settings.data_dir.resolve()}", file=sys.stderr)
    worker = None if args.no_worker else start_worker_process(settings, log_level=args.log_level)
    reaper = Reaper(make_celery(settings)).start()
    if args.demo:
        threading.Thread(
            target=_demo_safely,
            args=(settings, args),
            name="demo-seed",
            daemon=True,
        ).start()
    # uvicorn stops on SIGTERM as on SIGINT, then re-raises the signal it caught once its
    # own handlers are gone: with SIGTERM's default action that would end this process before
    # the `finally` below stops the worker. A handler of ours turns it into SystemExit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if api_workers == 1:
            uvicorn.run(
                create_app(settings), host=args.host, port=args.port, log_level=args.log_level
            )
        else:
            run_api_processes(
                settings, workers=api_workers, host=args.host, port=args.port, log=args.log_level
            )
    finally:
        reaper.stop()
        if worker is not None:
            stop_worker_process(worker)
    return 0


def run_api_processes(settings: Settings, *, workers: int, host: str, port: int, log: str) -> None:
    """Serve the API from `workers` processes on one socket until Ctrl-C or SIGTERM.

    Each process builds the app from the environment, so the settings go there first
    (absolute paths: the processes agree on one data folder, database and broker). SQLite
    serves several processes as it serves the API and the worker: WAL and a busy timeout.
    SIGTERM ends `serve` with the status a signal gives, as with one process.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    os.environ["DISTILLERY_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["DISTILLERY_DATABASE_URL"] = settings.resolved_database_url
    os.environ["DISTILLERY_BROKER_URL"] = settings.resolved_broker_url

    class Supervisor(Multiprocess):
        """uvicorn's process supervisor, remembering a SIGTERM."""

        terminated = False

        def handle_term(self) -> None:
            self.terminated = True
            super().handle_term()

    config = uvicorn.Config(
        API_APP, factory=True, host=host, port=port, workers=workers, log_level=log
    )
    supervisor = Supervisor(config, sockets=[config.bind_socket()])
    with contextlib.suppress(KeyboardInterrupt):
        supervisor.run()
    if supervisor.terminated:
        raise SystemExit(128 + signal.SIGTERM)


# --- the demo --------------------------------------------------------------------------------


def _demo_safely(settings: Settings, args: argparse.Namespace) -> None:
    try:
        seed_demo(
            settings,
            teacher=args.teacher,
            teacher_arch=args.teacher_arch,
            teacher_fpn_channels=args.teacher_fpn_channels,
            server=f"http://{args.host}:{args.port}",
        )
    except Exception as exc:  # the server keeps running; say what went wrong
        print(f"demo: could not set up the demo: {exc}", file=sys.stderr)


def _default_teacher(settings: Settings) -> Path | None:
    # Where `distillery demo` leaves its trained teacher (runs/demo-<preset>/teacher/).
    for candidate in (
        Path("runs") / "demo-quick" / "teacher" / "teacher.safetensors",
        Path("runs") / "demo-full" / "teacher" / "teacher.safetensors",
        settings.data_dir / "demo" / "teacher.safetensors",
    ):
        if candidate.is_file():
            return candidate
    return None


def _safetensors_metadata(path: Path) -> dict[str, Any]:
    # Read with NumPy: the API process never loads torch. Values are JSON where they can be.
    if path.suffix != ".safetensors":
        return {}
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        raw = dict(handle.metadata() or {})
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return meta


def _wait_for_status(read: Any, *, timeout: float = 600.0) -> str:
    deadline = time.monotonic() + timeout
    status = read()
    while status == "validating" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = read()
    return str(status)


def seed_demo(
    settings: Settings,
    *,
    teacher: Path | None = None,
    teacher_arch: str = "retinanet_resnet18_fpn",
    teacher_fpn_channels: int | None = None,
    server: str = "http://127.0.0.1:8000",
) -> dict[str, Any]:
    """Create (idempotently) the demo team, user, token, dataset, teacher, and queue a job."""
    import hashlib
    import shutil
    import tempfile

    from core.data.synthetic import generate_synthetic
    from store import repositories as repo
    from store.blob_keys import demo_dataset_key, demo_teacher_key
    from store.blobs import make_blob_store
    from store.db import make_engine, make_session_factory, session_scope
    from store.models import Dataset, Job, Teacher
    from worker.celery_app import (
        TASK_RUN_JOB,
        TASK_VALIDATE_DATASET,
        TASK_VALIDATE_TEACHER,
        make_celery,
    )

    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    blobs = make_blob_store(settings)
    app = make_celery(settings)
    made: dict[str, Any] = {}
    try:
        teacher = teacher or _default_teacher(settings)
        with session_scope(sessions) as session:
            team = repo.get_team_by_name(session, name=DEMO_TEAM) or repo.create_team(
                session, name=DEMO_TEAM
            )
            user = repo.get_user_by_email(session, email=DEMO_EMAIL)
            if user is None:
                user = repo.create_user(
                    session, email=DEMO_EMAIL, name="Demo admin", password=DEMO_PASSWORD
                )
            repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
            token, _ = repo.create_token(session, user_id=user.id, name="demo")
            team_id, user_id = team.id, user.id
            dataset_id = repo.named_row_id(session, Dataset, team_id=team_id, name=DEMO_DATASET)
            teacher_id = repo.named_row_id(session, Teacher, team_id=team_id, name=DEMO_TEACHER)
        print(
            f"demo: team {DEMO_TEAM!r}, user {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
            f"demo: API token {token}\n"
            f"demo: try  DISTILLERY_SERVER={server} DISTILLERY_TOKEN={token} distillery jobs",
            file=sys.stderr,
        )
        made["token"] = token
        if dataset_id is None:
            with tempfile.TemporaryDirectory() as tmp:
                folder = generate_synthetic(Path(tmp) / "data", images=60, size=160, seed=0)
                archive = Path(shutil.make_archive(str(Path(tmp) / "demo"), "zip", folder))
                digest = hashlib.sha256(archive.read_bytes()).hexdigest()
                key = demo_dataset_key(digest)
                blobs.put_file(key, archive)
                with session_scope(sessions) as session:
                    dataset_id = repo.create_dataset(
                        session,
                        team_id=team_id,
                        created_by=user_id,
                        name=DEMO_DATASET,
                        archive_key=key,
                        format="coco",
                        size_bytes=archive.stat().st_size,
                        sha256=digest,
                    ).id
            app.send_task(TASK_VALIDATE_DATASET, args=[dataset_id], queue="default")
        made["dataset_id"] = dataset_id
        if teacher_id is None and teacher is not None:
            # A teacher exported by core names its architecture in its metadata.
            meta = _safetensors_metadata(teacher)
            teacher_arch = str(meta.get("arch", teacher_arch))
            if teacher_fpn_channels is None and isinstance(meta.get("fpn_channels"), int):
                teacher_fpn_channels = int(meta["fpn_channels"])
            key = demo_teacher_key(teacher.name)
            blobs.put_file(key, teacher)
            with session_scope(sessions) as session:
                teacher_id = repo.create_teacher(
                    session,
                    team_id=team_id,
                    created_by=user_id,
                    name=DEMO_TEACHER,
                    arch=teacher_arch,
                    checkpoint_key=key,
                    fpn_channels=teacher_fpn_channels or 256,
                    size_bytes=teacher.stat().st_size,
                    sha256=hashlib.sha256(teacher.read_bytes()).hexdigest(),
                ).id
            app.send_task(TASK_VALIDATE_TEACHER, args=[teacher_id], queue="default")
        made["teacher_id"] = teacher_id

        def dataset_status(row_id: int) -> str:
            with session_scope(sessions) as session:
                row = repo.dataset_by_id(session, dataset_id=row_id)
                return "missing" if row is None else str(row.status)

        def teacher_status(row_id: int) -> str:
            with session_scope(sessions) as session:
                row = repo.teacher_by_id(session, teacher_id=row_id)
                return "missing" if row is None else str(row.status)

        if _wait_for_status(lambda: dataset_status(dataset_id)) != "ready":
            print("demo: the demo dataset is not ready; no job queued", file=sys.stderr)
            return made
        teacher_ready = teacher_id is not None and (
            _wait_for_status(lambda: teacher_status(teacher_id)) == "ready"
        )
        spec = demo_spec(dataset_id=dataset_id, teacher_id=teacher_id if teacher_ready else None)
        with session_scope(sessions) as session:
            queued = repo.named_row_id(session, Job, team_id=team_id, name=spec["name"])
            if queued is not None:
                made["job_id"] = queued
                return made
            from core.spec import JobSpec

            job = repo.create_job(
                session,
                team_id=team_id,
                created_by=user_id,
                kind=spec["kind"],
                spec=spec,
                spec_hash=JobSpec.model_validate(spec).spec_hash(),
                name=spec["name"],
                dataset_id=dataset_id,
                teacher_id=teacher_id if teacher_ready else None,
                max_attempts=settings.max_attempts,
            )
            job_id = job.id
        app.send_task(TASK_RUN_JOB, args=[job_id], queue=settings.job_queue)
        print(f"demo: queued job {job_id} ({spec['kind']}); open {server}", file=sys.stderr)
        made["job_id"] = job_id
        return made
    finally:
        engine.dispose()


def demo_spec(*, dataset_id: int, teacher_id: int | None) -> dict[str, Any]:
    """A small job on the demo dataset: distillation with a teacher, teacher training without."""
    data = {"dataset_id": dataset_id, "image_size": 160, "batch_size": 4}
    schedule = {"epochs": 2, "max_steps_per_epoch": 20, "warmup_steps": 5}
    if teacher_id is None:
        return {
            "kind": "teacher",
            "name": "demo teacher",
            "data": data,
            "teacher": {"arch": "retinanet_resnet18_fpn"},
            "schedule": schedule,
        }
    return {
        "kind": "distill",
        "name": "demo distillation",
        "data": data,
        "teacher": {"teacher_id": teacher_id},
        "student": {"arch": "retinanet_mobilenet_v2_fpn"},
        "schedule": schedule,
    }

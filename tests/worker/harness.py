"""Real platform parts for worker and end-to-end tests: worker processes, an API server, data.

Two deployments share the test code: `embedded` (SQLite, the serverless SQL broker, a local
blob folder) and `team` (PostgreSQL, Redis, S3 on moto's server).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store.blobs import S3BlobStore, make_blob_store
from store.migrate import upgrade
from store.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379"
TEACHER_ARCH = "retinanet_resnet18_fpn"
STUDENT_ARCH = "retinanet_mobilenet_v2_fpn"
TEACHER_FPN = 16
STUDENT_FPN = 16
IMAGE_SIZE = 64


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    """Whether a TCP server answers on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def settings_env(settings: Settings) -> dict[str, str]:
    """DISTILLERY_* environment variables that rebuild `settings` in another process."""
    env = {
        "DISTILLERY_DATA_DIR": str(settings.data_dir),
        "DISTILLERY_DATABASE_URL": settings.resolved_database_url,
        "DISTILLERY_BROKER_URL": settings.resolved_broker_url,
        "DISTILLERY_BLOB_BACKEND": settings.blob_backend,
        "DISTILLERY_BLOB_ROOT": str(settings.resolved_blob_root),
        "DISTILLERY_S3_BUCKET": settings.s3_bucket,
        "DISTILLERY_S3_REGION": settings.s3_region,
        "DISTILLERY_LEASE_SECONDS": str(settings.lease_seconds),
        "DISTILLERY_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "DISTILLERY_MAX_ATTEMPTS": str(settings.max_attempts),
        "DISTILLERY_JOB_QUEUE": settings.job_queue,
    }
    for name in ("s3_endpoint_url", "s3_access_key", "s3_secret_key"):
        value = getattr(settings, name)
        if value:
            env[f"DISTILLERY_{name.upper()}"] = str(value)
    return env


def make_settings(
    deployment: str,
    data_dir: Path,
    *,
    pg_url: str | None = None,
    s3_endpoint: str | None = None,
    **overrides: Any,
) -> Settings:
    """Settings of one deployment in `data_dir`; the job queue is unique to the caller."""
    # A queue of our own: other test sessions may share Redis with us.
    overrides.setdefault("job_queue", f"gpu-{uuid.uuid4().hex[:8]}")
    if deployment == "embedded":
        settings = Settings(data_dir=data_dir, **overrides)
    else:
        assert pg_url is not None and s3_endpoint is not None
        # The validation queue is always "default": a Redis database of our own keeps other
        # sessions' workers from taking our validations.
        db = random.randint(1, 15)
        settings = Settings(
            data_dir=data_dir,
            database_url=pg_url,
            broker_url=f"{REDIS_URL}/{db}",
            blob_backend="s3",
            s3_endpoint_url=s3_endpoint,
            s3_bucket=f"t-{uuid.uuid4().hex[:16]}",
            s3_region="us-east-1",
            s3_access_key="testing",
            s3_secret_key="testing",
            **overrides,
        )
        store = make_blob_store(settings)
        assert isinstance(store, S3BlobStore)
        store.ensure_bucket(region="us-east-1")
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    return settings


class WorkerProcess:
    """A `distillery worker` subprocess (prefork, concurrency 1) in its own process group."""

    def __init__(self, settings: Settings, log_path: Path, *, name: str = "w") -> None:
        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "cli.main", "worker", "--pool=prefork",
                "--concurrency=1", f"--hostname={hostname}", "--log-level=info",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker consumes (its log says ready)."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited early:\n{self.log()}")
            return "ready." in self.log()

        wait_for(ready, timeout=timeout, what="the worker to be ready")

    def log(self) -> str:
        """The worker's output so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then kill."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()


class ApiServer:
    """The real API (api.main.create_app) under uvicorn in a thread, on a free port."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from api.main import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def start(self) -> ApiServer:
        """Start serving and wait until it accepts connections."""
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, what="the API to start")
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --- tiny inputs -------------------------------------------------------------------------------


def dataset_zip(folder: Path, *, images: int = 10, seed: int = 0) -> Path:
    """A zip of the synthetic COCO benchmark (tiny images)."""
    from core.data.synthetic import generate_synthetic

    data = generate_synthetic(folder / "data", images=images, size=IMAGE_SIZE, seed=seed)
    return Path(shutil.make_archive(str(folder / "dataset"), "zip", data))


def dataset_categories(archive: Path) -> int:
    """K, the number of categories in a synthetic dataset zip."""
    import json

    with zipfile.ZipFile(archive) as zf:
        name = next(n for n in zf.namelist() if n.endswith("instances_train.json"))
        return len(json.loads(zf.read(name))["categories"])


def teacher_file(path: Path, *, num_classes: int, arch: str = TEACHER_ARCH) -> Path:
    """An untrained teacher of `arch` saved with safetensors."""
    from safetensors.torch import save_file

    from core.models.detectors import build_teacher

    model = build_teacher(
        arch=arch, num_classes=num_classes, image_size=IMAGE_SIZE, fpn_channels=TEACHER_FPN
    )
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return path


def distill_spec(
    dataset_id: int,
    teacher_id: int,
    *,
    epochs: int = 1,
    steps: int = 2,
    batch: int = 2,
    eval_every: int = 100,
) -> dict[str, Any]:
    """A tiny distillation spec on platform ids."""
    return {
        "kind": "distill",
        "data": {"dataset_id": dataset_id, "image_size": IMAGE_SIZE, "batch_size": batch},
        "teacher": {"teacher_id": teacher_id, "arch": TEACHER_ARCH, "fpn_channels": TEACHER_FPN},
        "student": {"arch": STUDENT_ARCH, "fpn_channels": STUDENT_FPN},
        "schedule": {
            "epochs": epochs,
            "max_steps_per_epoch": steps,
            "warmup_steps": 0,
            "device": "cpu",
            "amp": False,
            "eval_every": eval_every,
        },
    }


def teacher_spec(dataset_id: int, *, epochs: int = 1, steps: int = 2) -> dict[str, Any]:
    """A tiny teacher-training spec on a platform dataset."""
    return {
        "kind": "teacher",
        "data": {"dataset_id": dataset_id, "image_size": IMAGE_SIZE, "batch_size": 2},
        "teacher": {"arch": TEACHER_ARCH, "fpn_channels": TEACHER_FPN},
        "schedule": {
            "epochs": epochs,
            "max_steps_per_epoch": steps,
            "warmup_steps": 0,
            "device": "cpu",
            "amp": False,
            "eval_every": 100,
        },
    }


@dataclass
class Seeded:
    """A team with a ready dataset and a ready teacher, made straight in the store."""

    team_id: int
    user_id: int
    token: str
    dataset_id: int
    teacher_id: int


def seed_team(settings: Settings, tmp: Path, *, validate: bool = True) -> Seeded:
    """A team, a user with a token, a dataset and a teacher (validated in this process)."""
    from store import repositories as repo
    from store.db import session_scope
    from worker.context import build_context
    from worker.validation import validate_dataset, validate_teacher

    ctx = build_context(settings)
    archive = dataset_zip(tmp)
    num_classes = dataset_categories(archive) + 1
    weights = teacher_file(tmp / "teacher.safetensors", num_classes=num_classes)
    suffix = uuid.uuid4().hex[:8]
    ctx.blobs.put_file(f"datasets/{suffix}/dataset.zip", archive)
    ctx.blobs.put_file(f"teachers/{suffix}/teacher.safetensors", weights)
    with session_scope(ctx.sessions) as session:
        team = repo.create_team(session, name=f"team-{suffix}")
        user = repo.create_user(session, email=f"u-{suffix}@example.test", password="pw-12345678")
        repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
        token, _ = repo.create_token(session, user_id=user.id)
        dataset = repo.create_dataset(
            session, team_id=team.id, created_by=user.id, name="tiny",
            archive_key=f"datasets/{suffix}/dataset.zip", format="coco", sha256=suffix,
        )
        teacher = repo.create_teacher(
            session, team_id=team.id, created_by=user.id, name="tiny teacher",
            arch=TEACHER_ARCH, checkpoint_key=f"teachers/{suffix}/teacher.safetensors",
            fpn_channels=TEACHER_FPN, sha256=suffix,
        )
        seeded = Seeded(team.id, user.id, token, dataset.id, teacher.id)
    if validate:
        assert validate_dataset(ctx, seeded.dataset_id) == "ready"
        assert validate_teacher(ctx, seeded.teacher_id) == "ready"
    ctx.close()
    return seeded


@dataclass
class Deployment:
    """Settings of one deployment plus the parts a test started on it."""

    name: str
    settings: Settings
    tmp: Path
    workers: list[WorkerProcess]

    def start_worker(self, name: str = "w") -> WorkerProcess:
        """Start one more worker process and wait until it is ready."""
        (worker,) = self.start_workers(name, count=1)
        return worker

    def start_workers(self, name: str = "w", *, count: int) -> list[WorkerProcess]:
        """Start `count` worker processes at once and wait until all are ready."""
        started = []
        for _ in range(count):
            log_path = self.tmp / f"{name}-{len(self.workers)}.log"
            worker = WorkerProcess(self.settings, log_path, name=name)
            self.workers.append(worker)
            started.append(worker)
        for worker in started:
            worker.wait_ready()
        return started

    def holder_of(self, worker_id: str) -> WorkerProcess:
        """The worker process whose pool child holds a lease (worker ids are host:pid:nonce)."""
        pid = int(worker_id.split(":")[1])
        group = os.getpgid(pid)
        return next(w for w in self.workers if w.proc.pid == group)

    def close(self) -> None:
        """Stop every worker still running."""
        for worker in self.workers:
            worker.kill()


def deployment_params(*, team_slow: bool = False) -> list[Any]:
    """pytest params of the two deployments (`team` marked for Postgres and Redis)."""
    marks = [pytest.mark.postgres, pytest.mark.redis]
    if team_slow:
        marks.append(pytest.mark.slow)
    return ["embedded", pytest.param("team", marks=marks)]


def open_deployment(
    request: pytest.FixtureRequest, tmp: Path, **overrides: Any
) -> Iterator[Deployment]:
    """Yield a Deployment of `request.param`, its workers killed afterwards."""
    name = request.param
    if name == "team":
        if not reachable("127.0.0.1", 6379):
            pytest.skip("Redis is not running on 127.0.0.1:6379")
        pg_url = request.getfixturevalue("pg_url")
        s3 = request.getfixturevalue("s3_endpoint")
        settings = make_settings(name, tmp / "data", pg_url=pg_url, s3_endpoint=s3, **overrides)
    else:
        settings = make_settings(name, tmp / "data", **overrides)
    deployment = Deployment(name=name, settings=settings, tmp=tmp, workers=[])
    try:
        yield deployment
    finally:
        deployment.close()

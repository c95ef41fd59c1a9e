"""docker-compose.yml and the Dockerfiles, checked by reading them (Docker does not run here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from store.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def test_services_and_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"api", "worker", "postgres", "redis", "minio"} <= set(services)
    for name in ("api", "worker", "postgres", "redis", "minio"):
        check = services[name].get("healthcheck")
        assert check and check["test"], f"{name} has no health check"


def test_api_migrates_before_serving_and_waits_for_its_services(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    command = api["command"] if isinstance(api["command"], str) else " ".join(api["command"])
    assert command.index("distillery admin init") < command.index("api.main:create_app")
    for dependency in ("postgres", "redis"):
        assert api["depends_on"][dependency]["condition"] == "service_healthy"
    assert api["build"]["dockerfile"] == "docker/Dockerfile.api"


def test_worker_reserves_a_gpu_and_runs_one_job_at_a_time(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices)
    command = " ".join(worker["command"])
    assert "distillery worker" in command and "--concurrency 1" in command
    assert worker["build"]["dockerfile"] == "docker/Dockerfile.worker"


def test_api_and_worker_share_one_wiring_that_settings_accept(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, worker = _env(services["api"]), _env(services["worker"])
    shared = {k: v for k, v in api.items() if k.startswith("DISTILLERY_")}
    assert shared == {k: v for k, v in worker.items() if k.startswith("DISTILLERY_")}
    assert "@postgres:5432/" in api["DISTILLERY_DATABASE_URL"]
    assert api["DISTILLERY_BROKER_URL"].startswith("redis://redis:6379")
    assert api["DISTILLERY_S3_ENDPOINT_URL"] == "http://minio:9000"
    bucket = api["DISTILLERY_S3_BUCKET"]
    assert f"local/{bucket}" in services["minio-init"]["entrypoint"]
    # The production settings refuse an unsafe configuration; this one must load.
    required = "${DISTILLERY_SECRET_KEY:?set DISTILLERY_SECRET_KEY}"
    env = {k: v.replace(required, "s3cr3t") for k, v in api.items()}
    settings = Settings(**{k.removeprefix("DISTILLERY_").lower(): v for k, v in env.items()})
    assert settings.blob_backend == "s3" and settings.environment == "production"
    command = services["worker"]["command"]
    assert settings.job_queue in command[command.index("--queues") + 1].split(",")


def test_api_image_leaves_torch_out() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile.api").read_text()
    requirements = (ROOT / "docker" / "requirements-api.txt").read_text().lower()
    assert "pip install --no-deps -e ." in dockerfile
    names = [
        line.split(">")[0].split("=")[0].split("[")[0].strip()
        for line in requirements.splitlines()
    ]
    assert "torch" not in names and "torchvision" not in names and "fastapi" in names

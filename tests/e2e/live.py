"""A live deployment for end-to-end tests: the API, a worker process and a team's client."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cli.main import main as distillery
from tests.worker.harness import ApiServer, Deployment, wait_for

JOB_TIMEOUT = 400.0
PASSWORD = "e2e-password-123"


@dataclass
class Platform:
    """A running deployment: API URL, a team's token, and a client on it."""

    deployment: Deployment
    api: ApiServer
    token: str
    email: str
    http: httpx.Client
    tmp: Path

    def cli(self, *args: str) -> tuple[int, str]:
        """Run a `distillery` client command against this server: (exit status, stdout)."""
        out = io.StringIO()
        with redirect_stdout(out):
            status = distillery([*args, "--server", self.api.url, "--token", self.token])
        return status, out.getvalue()

    def get(self, path: str) -> dict[str, Any]:
        """GET an API path, asserting success."""
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_status(self, resource: str, row_id: int, *, timeout: float = 180) -> dict[str, Any]:
        """Wait until a dataset or teacher is no longer validating."""

        def done() -> dict[str, Any] | None:
            row = self.get(f"/{resource}/{row_id}")
            return row if row["status"] != "validating" else None

        return wait_for(done, timeout=timeout, what=f"{resource} {row_id} validation")  # type: ignore[no-any-return]

    def wait_job(self, job_id: int, *, states: tuple[str, ...]) -> dict[str, Any]:
        """Wait until the job is in one of `states`."""

        def reached() -> dict[str, Any] | None:
            job = self.get(f"/jobs/{job_id}")
            if job["state"] in states:
                return job
            assert job["state"] in ("queued", "running"), job
            return None

        return wait_for(reached, timeout=JOB_TIMEOUT, interval=0.1, what=f"job {job_id} {states}")  # type: ignore[no-any-return]

    def upload(self, resource: str, path: Path, **fields: str) -> dict[str, Any]:
        """Upload a file with form fields; the 202 body."""
        with path.open("rb") as fh:
            response = self.http.post(f"/{resource}", files={"file": (path.name, fh)}, data=fields)
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

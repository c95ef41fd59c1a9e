"""`distillery serve`: migrations, the API and an embedded worker, all stopped by Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.worker.harness import free_port, wait_for


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_serve_runs_api_and_worker_seeds_a_demo_and_stops_both_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DISTILLERY_DATA_DIR": str(tmp_path / "data"),
        "DISTILLERY_JOB_QUEUE": f"gpu-serve-{port}",
    }
    for name in ("DISTILLERY_DATABASE_URL", "DISTILLERY_BROKER_URL", "DISTILLERY_BLOB_BACKEND"):
        env.pop(name, None)
    log = (tmp_path / "serve.log").open("wb")
    command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--demo"]
    proc = subprocess.Popen(
        command,
        # Away from the repository: no runs/demo-*/teacher there, so the demo trains a teacher.
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    workers: list[int] = []
    try:
        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=120, what="the API")
        # Migrations ran against the embedded SQLite file in the data folder.
        assert (tmp_path / "data" / "distillery.db").is_file()
        workers.extend(_children(proc.pid))
        assert workers and all(_alive(pid) for pid in workers)
        wait_for(lambda: "ready." in (tmp_path / "serve.log").read_text(), timeout=120,
                 what="the embedded worker")

        # The demo: a token that works, a validated synthetic dataset and a queued job.
        queued = wait_for(
            lambda: re.search(r"demo: queued job (\d+)", (tmp_path / "serve.log").read_text()),
            timeout=180, what="the demo job",
        )
        token = re.search(r"API token (dst_\S+)", (tmp_path / "serve.log").read_text())
        assert token is not None
        api = f"http://127.0.0.1:{port}/api/v1"
        headers = {"Authorization": f"Bearer {token.group(1)}"}
        datasets = httpx.get(f"{api}/datasets", headers=headers, timeout=10).json()["data"]
        assert [d["status"] for d in datasets] == ["ready"]
        job_id = int(queued.group(1))
        job = httpx.get(f"{api}/jobs/{job_id}", headers=headers, timeout=10).json()
        assert job["kind"] == "teacher" and job["dataset_id"] == datasets[0]["id"]
        # Canceled first, so that the worker's warm shutdown has nothing to wait for.
        httpx.post(f"{api}/jobs/{job_id}/cancel", headers=headers, timeout=10)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not any(_alive(pid) for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # The worker runs in its own session: a failed test must not leave it behind.
        for pid in workers:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        log.close()


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in _children(pid):
        found.append(child)
        with contextlib.suppress(FileNotFoundError):
            found.extend(_descendants(child))
    return found


def test_sigterm_stops_serve_and_its_worker_like_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DISTILLERY_DATA_DIR": str(tmp_path / "data"),
        "DISTILLERY_JOB_QUEUE": f"gpu-term-{port}",
    }
    for name in ("DISTILLERY_DATABASE_URL", "DISTILLERY_BROKER_URL", "DISTILLERY_BLOB_BACKEND"):
        env.pop(name, None)
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    command = [sys.executable, "-m", "cli.main", "serve", "--port", str(port)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    processes: list[int] = []
    try:
        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=120, what="the API")
        wait_for(lambda: "ready." in log_path.read_text(), timeout=120, what="the worker")
        processes.extend(_descendants(proc.pid))
        assert processes and all(_alive(pid) for pid in processes)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        # The worker and its pool children are gone too: nothing is left with parent 1.
        wait_for(lambda: not any(_alive(pid) for pid in processes), timeout=30,
                 what="the worker processes to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in processes:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        log.close()

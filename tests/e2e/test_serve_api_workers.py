"""`distillery serve --api-workers N`: several API processes on one port, embedded SQLite."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cli.serve import api_workers_for, default_api_workers
from store import repositories as repo
from store.db import make_engine, make_session_factory, session_scope
from tests.worker.harness import free_port, wait_for

PASSWORD = "several processes, one file"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_the_default_follows_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [api_workers_for(cores) for cores in (1, 2, 3, 4, 6, 64)] == [1, 1, 1, 4, 4, 4]
    monkeypatch.setenv("DISTILLERY_API_WORKERS", "3")
    assert default_api_workers() == 3
    monkeypatch.setenv("DISTILLERY_API_WORKERS", "none")
    with pytest.raises(ValueError, match="DISTILLERY_API_WORKERS"):
        default_api_workers()


def test_two_api_processes_serve_one_sqlite_file_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {**os.environ, "DISTILLERY_DATA_DIR": str(data)}
    for name in ("DISTILLERY_DATABASE_URL", "DISTILLERY_BROKER_URL", "DISTILLERY_BLOB_BACKEND"):
        env.pop(name, None)
    log_path = tmp_path / "serve.log"
    command = [
        *(sys.executable, "-m", "cli.main", "serve", "--port", str(port)),
        *("--api-workers", "2", "--no-worker", "--log-level", "warning"),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    processes: list[int] = []
    try:

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=120, what="the API")
        servers = wait_for(
            lambda: (
                [
                    pid
                    for pid in _children(proc.pid)
                    if "multiprocessing" in _cmdline(pid)
                    and "resource_tracker" not in _cmdline(pid)
                ]
                if len(_children(proc.pid)) >= 2
                else None
            ),
            timeout=60,
            what="two API processes",
        )
        assert len(servers) == 2, [_cmdline(pid) for pid in _children(proc.pid)]
        processes.extend(_children(proc.pid))

        engine = make_engine(f"sqlite:///{data / 'distillery.db'}")
        with session_scope(make_session_factory(engine)) as session:
            team = repo.create_team(session, name="many")
            user = repo.create_user(session, email="many@example.test", password=PASSWORD)
            repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
        engine.dispose()

        def sign_in_and_list(_: int) -> tuple[int, int]:
            # Each sign-in writes a token row: writers in both processes share the file.
            login = httpx.post(
                f"{base}/api/v1/auth/login",
                json={"email": "many@example.test", "password": PASSWORD},
                timeout=60,
            )
            token = login.json().get("token", "")
            listed = httpx.get(
                f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=60
            )
            return login.status_code, listed.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(sign_in_and_list, range(16)))
        assert answers == [(200, 200)] * 16

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        wait_for(
            lambda: not any(_alive(pid) for pid in processes),
            timeout=30,
            what="the API processes to exit",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in processes:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

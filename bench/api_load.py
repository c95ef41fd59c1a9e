"""API load benchmark: the job list's pages/s with 1 and N API processes, its latency and
round trips in process, job lookups and submissions/s, and MLflow's run search beside it.

    python -m bench.api_load --quick    # CI-sized (300 jobs, 8 clients)
    python -m bench.api_load            # full (10,000 jobs, 50 clients)

Creates its own PostgreSQL database on 127.0.0.1:5432 (dropped at the end), migrates it,
seeds a team, a token, a ready dataset and the jobs (bulk insert; every job's spec differs),
then, in one run:

1. in process (the app called through httpx's ASGI transport, no server): the latency of
   single list requests one after another, and the database statements and wire round trips
   (libpq's protocol trace) per list request;
2. uvicorn with `api.main:create_app` in a subprocess, 1 process: list pages, job lookups and
   submissions under concurrent clients over loopback (each a keep-alive connection of
   `bench.http_client`, or httpx's with `--client httpx`);
3. the same server with `--api-workers` processes: list pages;
4. if `mlflow` is importable, an MLflow tracking server on its own database of the same
   PostgreSQL with as many runs, its run search (pages of 50) under the same clients.

Every scenario is bounded by a request count and a duration, so the run stops by itself.
Submissions go to a Redis broker (db 15) on a queue of the run's own, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench.figures import publish
from bench.http_client import HTTPProtocolError, KeepAliveConnection
from bench.timing import percentile
from cli.serve import api_workers_for, usable_cores

REPO_ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"jobs": 300, "clients": 8, "requests": 80, "submissions": 20, "max_seconds": 15.0},
    "full": {
        "jobs": 10_000,
        "clients": 50,
        "requests": 2_000,
        "submissions": 500,
        "max_seconds": 60.0,
    },
}
JOB_STATES = ("succeeded", "succeeded", "failed", "canceled", "running", "queued")
LATENCY_TARGET_MS = 10.0
"""The single-request list latency in process the platform aims at (p50)."""
PAGE = 50
CLIENTS = ("raw", "httpx")
"""The load generators: `raw` (bench.http_client, little CPU per request) or httpx's."""

REQUEST_TIMEOUT = 30.0
"""Seconds a request may take before it counts as failed (`TimeoutError`)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; --quick picks the CI-sized preset, explicit flags override it."""
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--jobs", type=int, help="job rows to seed")
    parser.add_argument("--clients", type=int, help="concurrent clients")
    parser.add_argument("--requests", type=int, help="requests per read scenario")
    parser.add_argument("--submissions", type=int, help="POST /jobs requests")
    parser.add_argument("--max-seconds", type=float, help="time bound of each scenario")
    parser.add_argument(
        "--api-workers",
        type=int,
        default=max(2, api_workers_for(usable_cores())),
        help="API processes of the multi-process run (default: serve's rule, at least 2)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432",
        help="server URL (no database); the benchmark creates and drops its own database",
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="raw",
        help="load generator: raw (bench.http_client, default) or httpx (more CPU per "
        "request, taken from the servers under test on a small machine)",
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# ---------------------------------------------------------------- database and seed rows


def _connect(server_url: str, *, dbname: str) -> Any:
    """An autocommit psycopg connection to `dbname` on the server of `server_url`."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=dbname,
        autocommit=True,
    )


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, drop it afterwards."""
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    name = f"distillery_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _connect(server_url, dbname="postgres")
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def settle(url: str) -> None:
    """VACUUM ANALYZE the seeded database: the planner statistics and visibility map that
    autovacuum gives a server within its naptime (a minute) of a bulk insert. Without them
    the planner takes the 10,000 rows for 50 and pages by a bitmap scan and a sort."""
    from sqlalchemy.engine import make_url

    with _connect(url, dbname=make_url(url).database or "postgres") as connection:
        connection.execute("VACUUM ANALYZE")


@dataclass
class Seed:
    """What the seeding created: the token to use and the ids to ask for."""

    token: str
    team_id: int
    dataset_id: int
    job_ids: list[int] = field(default_factory=list)


def job_spec(dataset_id: int, index: int) -> dict[str, Any]:
    """A valid teacher-job spec on the seeded dataset (as a JSON-able dict)."""
    from core.spec import DataSpec, JobSpec, TeacherSpec

    spec = JobSpec(
        kind="teacher",
        name=f"bench-{index}",
        data=DataSpec(dataset_id=dataset_id, image_size=160),
        teacher=TeacherSpec(arch="retinanet_resnet18_fpn"),
        seed=index % 3,
    )
    return spec.model_dump(mode="json")


def seed_rows(url: str, *, jobs: int) -> Seed:
    """Migrate the database and seed a team, user, token, dataset and `jobs` job rows."""
    from sqlalchemy import insert, select

    from core.spec_summary import spec_summary
    from store import repositories as repo
    from store.db import make_engine, make_session_factory
    from store.migrate import upgrade
    from store.models import Job

    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            team = repo.create_team(session, name="bench")
            user = repo.create_user(session, email="bench@example.org", name="Bench")
            repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
            token, _ = repo.create_token(session, user_id=user.id, name="bench")
            dataset = repo.create_dataset(
                session, team_id=team.id, created_by=user.id, name="synth", archive_key="bench"
            )
            repo.set_dataset_validation(session, dataset_id=dataset.id, status="ready")
            session.commit()
            start = datetime.now(UTC) - timedelta(days=30)
            rows = []
            for i in range(jobs):
                state = JOB_STATES[i % len(JOB_STATES)]
                spec = job_spec(dataset.id, i)  # each differs (its name)
                created = start + timedelta(seconds=i * 60)
                done = state in ("succeeded", "failed", "canceled")
                rows.append(
                    {
                        "team_id": team.id,
                        "created_by": user.id,
                        "name": f"job {i} {state}",
                        "kind": "teacher",
                        "spec": spec,
                        "summary": spec_summary("teacher", spec),  # as create_job stores it
                        "spec_hash": f"{i:016x}",
                        "dataset_id": dataset.id,
                        "state": state,
                        "progress": {"stage": "train", "epoch": 3, "epochs": 12, "step": 120},
                        "metrics": {"student": {"AP": 0.3, "AP_small": 0.2}} if done else None,
                        "attempt": 1,
                        "created_at": created,
                        "started_at": created if state != "queued" else None,
                        "finished_at": created + timedelta(minutes=20) if done else None,
                    }
                )
            for chunk in range(0, len(rows), 2_000):
                session.execute(insert(Job), rows[chunk : chunk + 2_000])
            repo.recount_jobs(session, team_id=team.id)  # the bulk insert bypassed create_job
            session.commit()
            job_ids = list(session.scalars(select(Job.id).where(Job.team_id == team.id)))
    finally:
        engine.dispose()
    settle(url)
    return Seed(token=token, team_id=team.id, dataset_id=dataset.id, job_ids=job_ids)


# ---------------------------------------------------------------- the server


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def api_server(
    env: dict[str, str], *, port: int, workers: int = 1, timeout: float = 60.0
) -> Iterator[str]:
    """Run uvicorn with `api.main:create_app` (`workers` processes) until /healthz answers."""
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--workers",
        str(workers),
    ]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(proc, log, base, timeout=timeout)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], log: Any, base: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the API server exited:\n{log.read().decode()[-3000:]}")
        try:
            if httpx.get(f"{base}{API}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the API server did not answer /healthz in time")
        time.sleep(0.2)


def purge_queue(broker: str, queue: str) -> None:
    """Delete the Redis keys of the run's own queue (nothing else)."""
    if not broker.startswith("redis"):
        return
    import redis

    client = redis.Redis.from_url(broker)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# ---------------------------------------------------------------- load


@dataclass
class ScenarioResult:
    """Latencies (seconds) and statuses of one scenario."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    """Why requests failed: `HTTP 503`, or the exception's name (`ReadTimeout`, ...)."""

    def figures(self, name: str) -> dict[str, Any]:
        """p50/p99 in ms, answered (2xx) requests/s and the error count, named for the
        scenario: a failed request is not counted as served."""
        n = len(self.latencies)
        figures: dict[str, Any] = {
            f"{name}: requests": n,
            f"{name}: p50 (ms)": percentile(self.latencies, 50) * 1000,
            f"{name}: p99 (ms)": percentile(self.latencies, 99) * 1000,
            f"{name}: max (ms)": max(self.latencies, default=0.0) * 1000,
            f"{name}: requests/s": (n - self.errors) / self.elapsed if self.elapsed else 0.0,
            f"{name}: non-2xx or failed": self.errors,
        }
        if self.reasons:
            figures[f"{name}: failures"] = ", ".join(
                f"{count} {reason}" for reason, count in self.reasons.most_common()
            )
        return figures


RequestFactory = Callable[[random.Random], tuple[str, str, dict[str, Any] | None]]


class Connection(Protocol):
    """What a client loop sends through: one request at a time, its status code."""

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        """Send a request, read the whole answer; its status code."""
        ...

    async def close(self) -> None:
        """Let the connection go."""
        ...


class HttpxConnection:
    """A client loop's share of one httpx.AsyncClient (its pool holds the connections)."""

    def __init__(self, shared: httpx.AsyncClient) -> None:
        self.shared = shared

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> int:
        """Send a request through the shared client; its status code."""
        return (await self.shared.request(method, path, json=body)).status_code

    async def close(self) -> None:
        """Nothing: the shared client is closed by its owner."""


async def drive(
    base: str,
    token: str,
    make_request: RequestFactory,
    *,
    clients: int,
    requests: int,
    max_seconds: float,
    client: str = "raw",
) -> ScenarioResult:
    """Send `requests` requests from `clients` concurrent clients, stopping at `max_seconds`.

    Each client sends its requests one after another over a connection it keeps open.
    """
    if client not in CLIENTS:
        raise ValueError(f"client {client!r} is not one of {', '.join(CLIENTS)}")
    result = ScenarioResult()
    remaining = [requests]
    deadline = time.perf_counter() + max_seconds
    # No token (MLflow): no Authorization header; httpx refuses an empty "Bearer " outright.
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    shared = None
    if client == "httpx":
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        shared = httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=REQUEST_TIMEOUT
        )

    async def client_loop(index: int) -> None:
        rng = random.Random(index)
        connection: Connection = (
            HttpxConnection(shared)
            if shared is not None
            else KeepAliveConnection(base, headers, timeout=REQUEST_TIMEOUT)
        )
        try:
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                method, path, body = make_request(rng)
                start = time.perf_counter()
                reason = None
                try:
                    status = await connection.request(method, path, body)
                    if not 200 <= status < 300:
                        reason = f"HTTP {status}"
                except (httpx.HTTPError, OSError, TimeoutError, HTTPProtocolError) as exc:
                    reason = type(exc).__name__
                except asyncio.IncompleteReadError:
                    reason = "connection closed mid-answer"
                result.latencies.append(time.perf_counter() - start)
                if reason is not None:
                    result.errors += 1
                    result.reasons[reason] += 1
        finally:
            await connection.close()

    start = time.perf_counter()
    try:
        await asyncio.gather(*(client_loop(i) for i in range(clients)))
    finally:
        result.elapsed = time.perf_counter() - start
        if shared is not None:
            await shared.aclose()
    return result


def run_async(coroutine: Any) -> Any:
    """Run a coroutine on uvloop where it is installed (less CPU per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def scenarios(seed: Seed) -> dict[str, RequestFactory]:
    """The request mix of each scenario: list pages, get one job, submit one job."""
    total = len(seed.job_ids)
    spec = job_spec(seed.dataset_id, 1)

    def list_jobs(rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
        offset = rng.randrange(0, max(1, total - PAGE))
        return "GET", f"{API}/jobs?limit={PAGE}&offset={offset}", None

    def get_job(rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
        return "GET", f"{API}/jobs/{rng.choice(seed.job_ids)}", None

    def submit(rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
        return "POST", f"{API}/jobs", {"spec": spec, "name": f"bench {rng.random():.6f}"}

    return {"list jobs": list_jobs, "get job": get_job, "submit job": submit}


# ---------------------------------------------------------------- in process


class WireTrace:
    """Round trips on the wire of every connection an engine checks out (libpq's trace).

    Each round trip ends with the server's ReadyForQuery, whatever it carried: a statement,
    BEGIN, COMMIT, ROLLBACK or a ping, which statement counters do not see.
    """

    def __init__(self, engine: Any, path: Path) -> None:
        self.engine = engine
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        import psycopg

        dbapi_connection.pgconn.trace(self.fd)
        dbapi_connection.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )

    def _checkin(self, dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None and not dbapi_connection.closed:
            dbapi_connection.pgconn.untrace()

    def round_trips(self) -> int:
        """Round trips traced so far."""
        text = self.path.read_text(errors="replace")
        return sum(
            1 for line in text.splitlines() if line.startswith("B\t") and "ReadyForQuery" in line
        )

    def __enter__(self) -> WireTrace:
        from sqlalchemy import event

        event.listen(self.engine, "checkout", self._checkout, insert=True)
        event.listen(self.engine, "checkin", self._checkin)
        return self

    def __exit__(self, *_exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "checkout", self._checkout)
        event.remove(self.engine, "checkin", self._checkin)
        os.close(self.fd)


async def _sequential(app: Any, token: str, paths: Sequence[str]) -> list[float]:
    """Each request after the previous one, through the ASGI transport; their latencies."""
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for path in paths:
            start = time.perf_counter()
            response = await client.get(path, headers=headers)
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
    return latencies


def in_process_figures(env: dict[str, str], seed: Seed, *, requests: int) -> dict[str, Any]:
    """Single-request list latency in process, and what one list request costs the database."""
    from sqlalchemy import event

    from api.main import create_app
    from store.settings import Settings

    settings = Settings(
        database_url=env["DISTILLERY_DATABASE_URL"],
        broker_url=env["DISTILLERY_BROKER_URL"],
        job_queue=env["DISTILLERY_JOB_QUEUE"],
        data_dir=Path(env["DISTILLERY_DATA_DIR"]),
    )
    app = create_app(settings)
    engine = app.state.engine
    rng = random.Random(0)
    total = len(seed.job_ids)

    def pages(n: int) -> list[str]:
        return [
            f"{API}/jobs?limit={PAGE}&offset={rng.randrange(0, max(1, total - PAGE))}"
            for _ in range(n)
        ]

    try:
        asyncio.run(_sequential(app, seed.token, pages(20)))  # warm: pool, caches, token use
        latencies = asyncio.run(_sequential(app, seed.token, pages(requests)))
        statements: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        counted = max(10, requests // 4)
        with tempfile.TemporaryDirectory() as folder:
            event.listen(engine, "before_cursor_execute", count)
            try:
                with WireTrace(engine, Path(folder) / "trace.txt") as trace:
                    asyncio.run(_sequential(app, seed.token, pages(counted)))
                    wire = trace.round_trips()
            finally:
                event.remove(engine, "before_cursor_execute", count)
    finally:
        app.state.queue.close()
        engine.dispose()
    p50 = percentile(latencies, 50) * 1000
    return {
        "in process: list p50 (ms)": p50,
        "in process: list p99 (ms)": percentile(latencies, 99) * 1000,
        f"in process: list p50 <= {LATENCY_TARGET_MS:g} ms": p50 <= LATENCY_TARGET_MS,
        "statements per list request": len(statements) / counted,
        "round trips per list request (wire)": wire / counted,
    }


# ---------------------------------------------------------------- the run


def _drive(
    base: str, token: str, make_request: RequestFactory, args: argparse.Namespace, count: int
) -> ScenarioResult:
    return run_async(
        drive(
            base,
            token,
            make_request,
            clients=args.clients,
            requests=count,
            max_seconds=args.max_seconds,
            client=args.client,
        )
    )


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its figures and return them."""
    args = parse_args(argv)
    queue = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    workers = args.api_workers
    figures: dict[str, Any] = {
        "setup": f"{args.jobs} jobs in PostgreSQL, {args.clients} concurrent clients, "
        f"1 and {workers} uvicorn processes, loopback, {args.client} client",
    }
    with scratch_database(args.postgres) as url, tempfile.TemporaryDirectory() as data_dir:
        start = time.perf_counter()
        seed = seed_rows(url, jobs=args.jobs)
        figures["seed time (s)"] = time.perf_counter() - start
        env = {
            "DISTILLERY_DATABASE_URL": url,
            "DISTILLERY_BROKER_URL": args.broker,
            "DISTILLERY_JOB_QUEUE": queue,
            "DISTILLERY_DATA_DIR": data_dir,
        }
        make = scenarios(seed)
        try:
            figures.update(in_process_figures(env, seed, requests=args.requests))
            with api_server(env, port=free_port()) as base:
                for name, make_request in make.items():
                    count = args.submissions if name == "submit job" else args.requests
                    figures.update(
                        _drive(base, seed.token, make_request, args, count).figures(name)
                    )
            with api_server(env, port=free_port(), workers=workers) as base:
                name = f"list jobs, {workers} processes"
                result = _drive(base, seed.token, make["list jobs"], args, args.requests)
                figures.update(result.figures(name))
        finally:
            purge_queue(args.broker, queue)
        figures["list pages/s, 1 process"] = figures["list jobs: requests/s"]
        figures[f"list pages/s, {workers} processes"] = figures[f"{name}: requests/s"]
        figures["job submissions/s"] = figures.get("submit job: requests/s", 0.0)
        figures.update(mlflow_figures(args, figures["list pages/s, 1 process"]))
    return publish("API under load", figures, device="cpu", json_path=args.json)


def mlflow_figures(args: argparse.Namespace, pages_per_second: float) -> dict[str, Any]:
    """MLflow's run search on as many runs (same server, clients and bounds), if installed."""
    from bench import mlflow_search

    if not mlflow_search.available():
        line = "skipped: mlflow is not importable (pip install mlflow to compare)"
        print(f"MLflow comparison {line}", file=sys.stderr)
        return {"MLflow comparison": line}
    with scratch_database(args.postgres) as url, tempfile.TemporaryDirectory() as folder:
        experiment = mlflow_search.seed_runs(url, runs=args.jobs, artifacts=Path(folder))
        settle(url)  # as for the platform's rows
        with mlflow_search.tracking_server(url, port=free_port(), artifacts=Path(folder)) as base:
            result = run_async(
                drive(
                    base,
                    "",
                    mlflow_search.search_request(experiment, runs=args.jobs, page=PAGE),
                    clients=args.clients,
                    requests=args.requests,
                    max_seconds=args.max_seconds,
                    client=args.client,
                )
            )
    out = result.figures("MLflow run search, 1 process")
    mlflow_rate = out["MLflow run search, 1 process: requests/s"]
    out["list pages/s / MLflow's (x)"] = pages_per_second / mlflow_rate if mlflow_rate else 0.0
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    run(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

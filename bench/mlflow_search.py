"""MLflow's run search beside the job list, for `bench.api_load` (only where mlflow is installed).

The runs carry what a job list row shows: a name, a state, start and end times, the spec
summary's fields as params and the headline AP figures as metrics. They are written with
MLflow's own SQLAlchemy store into a database of their own on the same PostgreSQL server;
`mlflow server` answers `POST /api/2.0/mlflow/runs/search` in pages of 50, newest first,
page tokens being MLflow's offset tokens.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

SEARCH = "/api/2.0/mlflow/runs/search"


def available() -> bool:
    """Whether mlflow can be imported here."""
    return importlib.util.find_spec("mlflow") is not None


def seed_runs(url: str, *, runs: int, artifacts: Path) -> str:
    """Create an experiment with `runs` finished runs; its id."""
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(url, artifacts.as_uri())
    experiment = store.create_experiment("bench")
    start = int(time.time() * 1000) - 30 * 24 * 3600 * 1000
    for i in range(runs):
        began = start + i * 60_000
        run = store.create_run(
            experiment, user_id="bench", start_time=began, tags=[], run_name=f"job {i}"
        )
        params = {
            "student_arch": "retinanet_mobilenet_v2_fpn",
            "teacher_arch": "retinanet_resnet18_fpn",
            "preset": "hierarchical",
            "lambda_kd": "0.001",
            "lr": "0.001",
            "epochs": "12",
            "image_size": "160",
        }
        metrics = {"AP": 0.3, "AP_small": 0.2, "AP_medium": 0.35, "AP_large": 0.4}
        store.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, began, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[],
        )
        store.update_run_info(run.info.run_id, RunStatus.FINISHED, began + 1_200_000, None)
    return str(experiment)


@contextlib.contextmanager
def tracking_server(url: str, *, port: int, artifacts: Path) -> Iterator[str]:
    """`mlflow server` (one worker) on the database at `url`, until it answers; its base URL."""
    cmd = [
        *(sys.executable, "-m", "mlflow", "server", "--backend-store-uri", url),
        *("--default-artifact-root", artifacts.as_uri(), "--host", "127.0.0.1"),
        *("--port", str(port), "--workers", "1"),
    ]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"mlflow server exited:\n{log.read().decode()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not answer /health in time")
                time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def page_token(offset: int) -> str:
    """MLflow's page token for an offset (what its SQL store hands out)."""
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def search_request(
    experiment: str, *, runs: int, page: int
) -> Callable[[random.Random], tuple[str, str, dict[str, Any] | None]]:
    """A bench.api_load request factory: one search page at a random offset."""

    def make(rng: random.Random) -> tuple[str, str, dict[str, Any] | None]:
        body: dict[str, Any] = {
            "experiment_ids": [experiment],
            "max_results": page,
            "order_by": ["attributes.start_time DESC"],
        }
        offset = rng.randrange(0, max(1, runs - page))
        if offset:
            body["page_token"] = page_token(offset)
        return "POST", SEARCH, body

    return make

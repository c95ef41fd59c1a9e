"""A real Distillery for the dashboard's browser tests: API server, worker, teams, tiny data.

One deployment (embedded: SQLite, the serverless broker, local blobs) serves the whole
module; the tests drive Debian's Chromium through Playwright against it and save a
screenshot of every page to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from store import repositories as repo
from store.db import make_engine, make_session_factory, session_scope
from store.settings import Settings
from tests.worker.harness import (
    TEACHER_ARCH,
    TEACHER_FPN,
    ApiServer,
    WorkerProcess,
    dataset_categories,
    dataset_zip,
    make_settings,
    teacher_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (Playwright's own browser download fails offline)."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (make browser)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A laptop-sized window that accepts downloads."""
    return {
        **browser_context_args,
        "viewport": {"width": 1360, "height": 900},
        "accept_downloads": True,
    }


def ensure_dashboard_built() -> None:
    """Build web/dist as `make web` does, unless it is already built."""
    web = REPO_ROOT / "web"
    if (web / "dist" / "index.html").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("web/dist is not built and npm is missing (make web)")
    if not (web / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=web, check=True)
    subprocess.run([npm, "run", "build"], cwd=web, check=True)


@dataclass
class Account:
    """A user with an API token and the id of the team they act in."""

    user_id: int
    email: str
    password: str
    token: str
    team_id: int
    team_name: str

    @property
    def headers(self) -> dict[str, str]:
        """Headers that authenticate as this user in this team."""
        return {"Authorization": f"Bearer {self.token}", "X-Team-Id": str(self.team_id)}


@dataclass
class WebPlatform:
    """The running platform and what the tests made on it, in test order."""

    url: str
    settings: Settings
    tmp: Path
    me: Account
    second_team_id: int
    second_team_job: str
    other: Account
    other_job_id: int
    other_job_name: str
    dataset_zip: Path
    broken_zip: Path
    teacher_id: int
    worker: WorkerProcess
    state: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API as the signed-in user; returns the parsed JSON."""
        response = httpx.request(
            method, f"{self.url}/api/v1{path}", headers=self.me.headers, timeout=60, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def need(self, key: str) -> Any:
        """What an earlier test made; fails clearly when that test did not get that far."""
        if key not in self.state:
            pytest.fail(f"an earlier test did not provide {key!r}")
        return self.state[key]


def broken_dataset_zip(folder: Path) -> Path:
    """A COCO zip with two faults a user makes: an image missing, a box of negative width."""
    from core.data.synthetic import generate_synthetic

    data = generate_synthetic(folder / "data", images=4, size=64, seed=1)
    sorted((data / "images" / "train").iterdir())[0].unlink()
    annotations = data / "annotations" / "instances_train.json"
    coco = json.loads(annotations.read_text())
    coco["annotations"][0]["bbox"] = [10, 10, -3, 10]
    annotations.write_text(json.dumps(coco))
    return Path(shutil.make_archive(str(folder / "broken"), "zip", data))


def _account(session: Any, *, team_id: int, team_name: str, name: str) -> Account:
    suffix = uuid.uuid4().hex[:8]
    email = f"{name.split()[0].lower()}-{suffix}@example.test"
    password = f"pw-{uuid.uuid4().hex[:12]}"
    user = repo.create_user(session, email=email, name=name, password=password)
    repo.add_member(session, team_id=team_id, user_id=user.id, role="admin")
    token, _ = repo.create_token(session, user_id=user.id, name="browser tests")
    return Account(user.id, email, password, token, team_id, team_name)


@pytest.fixture(scope="module")
def distillery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebPlatform]:
    """API (uvicorn, serving web/dist) + a Celery worker process + two teams + a teacher."""
    ensure_dashboard_built()
    tmp = tmp_path_factory.mktemp("web")
    settings = make_settings("embedded", tmp / "data")
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    suffix = uuid.uuid4().hex[:6]
    with session_scope(sessions) as s:
        mine = repo.create_team(s, name=f"vision-{suffix}")
        me = _account(s, team_id=mine.id, team_name=mine.name, name="Ada Lovelace")
        # The same user in a second team, for the team switcher.
        second = repo.create_team(s, name=f"drones-{suffix}")
        repo.add_member(s, team_id=second.id, user_id=me.user_id, role="member")
        second_job = repo.create_job(
            s,
            team_id=second.id,
            created_by=me.user_id,
            kind="distill",
            spec={"kind": "distill", "data": {"dataset_id": 999}},
            name=f"drones-only-{suffix}",
        )
        second_job_name = second_job.name
        # Another team the user is not in: none of its rows may ever show.
        theirs = repo.create_team(s, name=f"rivals-{suffix}")
        other = _account(s, team_id=theirs.id, team_name=theirs.name, name="Eve Rival")
        other_job = repo.create_job(
            s,
            team_id=theirs.id,
            created_by=other.user_id,
            kind="distill",
            spec={"kind": "distill", "data": {"dataset_id": 999}},
            name=f"rival-secret-{suffix}",
        )
        other_job_id, other_job_name, second_id = other_job.id, other_job.name, second.id
    engine.dispose()

    server = ApiServer(settings).start()
    worker = WorkerProcess(settings, tmp / "worker.log", name="web")
    try:
        worker.wait_ready(timeout=120)
        archive = dataset_zip(tmp)
        broken = broken_dataset_zip(tmp / "broken")
        weights = teacher_file(
            tmp / "teacher.safetensors", num_classes=dataset_categories(archive) + 1
        )
        with weights.open("rb") as fh:
            response = httpx.post(
                f"{server.url}/api/v1/teachers",
                headers=me.headers,
                data={
                    "name": "tiny R18 teacher",
                    "arch": TEACHER_ARCH,
                    "fpn_channels": str(TEACHER_FPN),
                },
                files={"file": ("teacher.safetensors", fh, "application/octet-stream")},
                timeout=120,
            )
        response.raise_for_status()
        yield WebPlatform(
            url=server.url,
            settings=settings,
            tmp=tmp,
            me=me,
            second_team_id=second_id,
            second_team_job=second_job_name,
            other=other,
            other_job_id=other_job_id,
            other_job_name=other_job_name,
            dataset_zip=archive,
            broken_zip=broken,
            teacher_id=response.json()["id"],
            worker=worker,
        )
    finally:
        worker.kill()
        server.stop()


def sign_in(page: Page, distillery: WebPlatform, route: str = "#/jobs") -> None:
    """Open the dashboard already signed in (the token in localStorage, as after sign-in)."""
    page.goto(f"{distillery.url}/")
    page.evaluate(
        "([t, team]) => { localStorage.setItem('distillery.token', t); "
        "localStorage.setItem('distillery.team', team); }",
        [distillery.me.token, str(distillery.me.team_id)],
    )
    page.goto(f"{distillery.url}/{route}")


def shot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot of the page under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path

"""Fixtures of the end-to-end tests: one live deployment per module and parameter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from store import repositories as repo
from store.db import make_engine, make_session_factory, session_scope
from tests.e2e.live import PASSWORD, Platform
from tests.worker.harness import (
    TEACHER_ARCH,
    TEACHER_FPN,
    ApiServer,
    dataset_categories,
    dataset_zip,
    deployment_params,
    open_deployment,
    teacher_file,
)


@pytest.fixture(scope="module", params=deployment_params())
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """One deployment per parameter with a worker process, the API and a team."""
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    for deployment in open_deployment(request, tmp):
        settings = deployment.settings
        engine = make_engine(settings.resolved_database_url)
        with session_scope(make_session_factory(engine)) as session:
            suffix = uuid.uuid4().hex[:8]
            team = repo.create_team(session, name=f"e2e-{suffix}")
            user = repo.create_user(
                session, email=f"e2e-{suffix}@example.test", password=PASSWORD
            )
            repo.add_member(session, team_id=team.id, user_id=user.id, role="admin")
            token, _ = repo.create_token(session, user_id=user.id)
            email = user.email
        engine.dispose()
        api = ApiServer(settings).start()
        deployment.start_worker("e2e")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"{api.url}/api/v1", headers=headers, timeout=30) as http:
            try:
                yield Platform(deployment, api, token, email, http, tmp)
            finally:
                api.stop()


@pytest.fixture(scope="module")
def inputs(platform: Platform) -> dict[str, int]:
    """A validated dataset and teacher uploaded through the API."""
    archive = dataset_zip(platform.tmp)
    dataset = platform.upload("datasets", archive, name="tiny", format="coco")
    weights = teacher_file(
        platform.tmp / "teacher.safetensors", num_classes=dataset_categories(archive) + 1
    )
    teacher = platform.upload(
        "teachers", weights, name="tiny teacher", arch=TEACHER_ARCH,
        fpn_channels=str(TEACHER_FPN),
    )
    ready = platform.wait_status("datasets", dataset["id"])
    assert ready["status"] == "ready", ready.get("errors")
    assert ready["statistics"]["images"] > 0
    assert "size_histogram" in ready["statistics"]
    ready_teacher = platform.wait_status("teachers", teacher["id"])
    assert ready_teacher["status"] == "ready", ready_teacher.get("errors")
    return {"dataset": dataset["id"], "teacher": teacher["id"]}

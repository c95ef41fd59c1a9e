"""GET /spec/schema: core.spec for clients (the dashboard's form keeps no copy of it)."""

from __future__ import annotations

import copy
from typing import Any, get_args

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.spec import (
    ABLATION_PRESETS,
    DistillSpec,
    JobSpec,
    ScheduleSpec,
    StudentArch,
    TeacherArch,
    ablation_distill,
)
from core.spec_summary import detect_preset, spec_summary
from tests.api.factories import make_dataset, make_teacher
from tests.platform_fixtures import TeamContext

API = "/api/v1"


def _catalog(client: TestClient) -> dict[str, Any]:
    response = client.get(f"{API}/spec/schema")  # no token: nothing in it is private
    assert response.status_code == 200, response.text
    assert "max-age" in response.headers["cache-control"]
    body: dict[str, Any] = response.json()
    return body


def test_the_catalog_is_core_spec(client: TestClient) -> None:
    catalog = _catalog(client)
    assert catalog["json_schema"] == JobSpec.model_json_schema()
    assert catalog["architectures"] == {
        "teacher": list(get_args(TeacherArch)),
        "student": list(get_args(StudentArch)),
    }
    assert catalog["levels"] == ["p2", "p3", "p4", "p5"]
    assert catalog["terms"] == ["spatial", "semantic", "context"]
    assert catalog["kinds"] == ["teacher", "distill", "evaluate"]
    assert catalog["defaults"]["distill"] == DistillSpec().model_dump(mode="json")
    assert catalog["defaults"]["schedule"] == ScheduleSpec().model_dump(mode="json")
    assert catalog["defaults"]["data"]["image_size"] == 160
    assert [p["id"] for p in catalog["presets"]] == list(ABLATION_PRESETS)
    for preset in catalog["presets"]:
        assert preset["label"] and preset["description"]
        expected = ablation_distill(DistillSpec(), preset["id"]).model_dump(mode="json")
        assert preset["distill"] == expected
    fields = catalog["preset_fields"]
    assert {"lambda_kd", "response", "levels.p2.spatial", "spatial.adapter"} <= set(fields)
    assert "temperature" not in fields  # no preset changes it


def test_each_preset_is_recognised_and_other_weights_are_custom() -> None:
    for preset in ABLATION_PRESETS:
        distill = ablation_distill(DistillSpec(), preset).model_dump(mode="json")
        assert detect_preset(distill) == preset
        # Fields no preset sets do not matter.
        assert detect_preset({**distill, "temperature": 4.0}) == preset
    assert detect_preset({}) == "hierarchical"  # the defaults are the paper's method
    custom = DistillSpec().model_dump(mode="json")
    custom["levels"]["p4"]["context"] = 0.5
    assert detect_preset(custom) is None
    summary = spec_summary("distill", {"kind": "distill", "data": {"dataset_id": 3}})
    assert summary["preset"] == "hierarchical" and summary["student_arch"] is None


def test_a_spec_built_from_the_defaults_is_accepted(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    """What the form submits when the user changes nothing but the dataset and teacher."""
    catalog = _catalog(client)
    defaults = copy.deepcopy(catalog["defaults"])
    dataset_id = make_dataset(session_factory, team)
    teacher_id = make_teacher(session_factory, team, arch="retinanet_resnet18_fpn")
    spec = {
        "kind": "distill",
        "data": {**defaults["data"], "dataset_id": dataset_id},
        "teacher": {
            **defaults["teacher"],
            "teacher_id": teacher_id,
            "arch": "retinanet_resnet18_fpn",
            "fpn_channels": 64,
        },
        "student": defaults["student"],
        "distill": next(p for p in catalog["presets"] if p["id"] == "single_level")["distill"],
        "schedule": defaults["schedule"],
        "seed": defaults["seed"],
    }
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 201, response.text
    listed = client.get(f"{API}/jobs", headers=team.headers).json()["data"][0]
    assert listed["spec_summary"]["preset"] == "single_level"

"""`data.classes` at submission: names the dataset's classes lack are a 422 naming the field."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from store import repositories as repo
from store.db import session_scope
from tests.api.factories import distill_spec, make_dataset, make_teacher
from tests.platform_fixtures import TeamContext

API = "/api/v1"
CLASSES = {"car": 4, "van": 2, "person": 3, "tree": 1}


def _dataset_with_classes(factory: sessionmaker[Session], team: TeamContext) -> int:
    """A ready dataset whose statistics count boxes of CLASSES (as validation writes them)."""
    dataset_id = make_dataset(factory, team, name="street")
    with session_scope(factory) as s:
        statistics = {"images": 3, "categories": len(CLASSES), "boxes_per_class": CLASSES}
        repo.set_dataset_validation(
            s, dataset_id=dataset_id, status="ready", statistics=statistics, force=True
        )
    return dataset_id


def test_unknown_class_names_are_422_listing_the_dataset_classes(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = _dataset_with_classes(session_factory, team)
    spec = distill_spec(dataset_id, make_teacher(session_factory, team))
    spec["data"]["classes"] = {"merge": {"vehicle": ["car", "lorry"]}, "ignore": ["tres"]}
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 422, response.text
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    listing = "the dataset's classes are ['car', 'van', 'person', 'tree']"
    assert errors == {
        ("body", "spec", "data", "classes", "merge", "vehicle"): (
            f"the dataset has no class 'lorry'; {listing}"
        ),
        ("body", "spec", "data", "classes", "ignore", 0): (
            f"the dataset has no class 'tres' (did you mean 'tree'?); {listing}"
        ),
    }


def test_a_mapping_that_fits_is_stored_with_the_job(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    dataset_id = _dataset_with_classes(session_factory, team)
    spec = distill_spec(dataset_id, make_teacher(session_factory, team))
    classes = {"merge": {"vehicle": ["car", "van"]}, "ignore": ["tree"]}
    spec["data"]["classes"] = classes
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["data"]["classes"] == classes
    plain = distill_spec(dataset_id, make_teacher(session_factory, team))
    other = client.post(f"{API}/jobs", headers=team.headers, json={"spec": plain})
    assert other.json()["spec"]["data"]["classes"] is None
    assert other.json()["spec_hash"] != response.json()["spec_hash"]


def test_a_bad_mapping_is_422_before_any_lookup(
    client: TestClient, team: TeamContext, session_factory: sessionmaker[Session]
) -> None:
    spec = distill_spec(make_dataset(session_factory, team), make_teacher(session_factory, team))
    spec["data"]["classes"] = {"merge": {"vehicle": []}}
    response = client.post(f"{API}/jobs", headers=team.headers, json={"spec": spec})
    assert response.status_code == 422
    locs = [tuple(e["loc"]) for e in response.json()["detail"]]
    assert locs == [("body", "spec", "data", "classes", "merge", "vehicle")]

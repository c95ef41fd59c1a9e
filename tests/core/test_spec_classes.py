"""`data.classes`: the spec's checks of a class mapping, its reading of a dataset's names, and
the hash of specs that do not use it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from core.spec import ClassMapSpec, JobSpec


def _job(classes: object = None, **data: object) -> dict[str, Any]:
    section: dict[str, object] = {"path": "data", **data}
    if classes is not None:
        section["classes"] = classes
    return {"kind": "teacher", "data": section, "teacher": {}}


def _errors(classes: object) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(_job(classes))
    return [(tuple(e["loc"]), e["msg"]) for e in info.value.errors()]


def test_a_valid_mapping_is_kept() -> None:
    spec = JobSpec.model_validate(_job({"merge": {"vehicle": ["car", "van"]}, "ignore": ["tree"]}))
    assert spec.data.classes == ClassMapSpec(merge={"vehicle": ["car", "van"]}, ignore=["tree"])
    assert spec.data.classes.sources() == {"car": "vehicle", "van": "vehicle"}
    assert JobSpec.model_validate(_job()).data.classes is None


@pytest.mark.parametrize(
    ("classes", "loc", "words"),
    [
        ({"merge": {"vehicle": []}}, ("data", "classes", "merge", "vehicle"), "at least 1 item"),
        (
            {"merge": {"": ["car"]}},
            ("data", "classes", "merge", "", "[key]"),
            "at least 1 character",
        ),
        ({"ignore": [""]}, ("data", "classes", "ignore", 0), "at least 1 character"),
        ({"merge": {"vehicle": ["car", "car"]}}, ("data", "classes", "merge"), "'car' twice"),
        (
            {"merge": {"vehicle": ["car"], "auto": ["car"]}},
            ("data", "classes", "merge"),
            "'car' is listed under both 'vehicle' and 'auto'",
        ),
        (
            {"merge": {"vehicle": ["car"], "thing": ["vehicle"]}},
            ("data", "classes", "merge"),
            "'vehicle' is a new class and merged into 'thing'",
        ),
        ({"ignore": ["tree", "tree"]}, ("data", "classes", "ignore"), "['tree'] listed more"),
        (
            {"merge": {"vehicle": ["car"]}, "ignore": ["car"]},
            ("data", "classes"),
            "ignore: ['car'] also appear in merge",
        ),
        (
            {"merge": {"vehicle": ["car"]}, "ignore": ["vehicle"]},
            ("data", "classes"),
            "ignore: ['vehicle'] also appear in merge",
        ),
        ({}, ("data", "classes"), "classes needs 'merge' or 'ignore'"),
        ({"merge": {}, "ignore": []}, ("data", "classes"), "classes needs 'merge' or 'ignore'"),
        ({"ignored": ["tree"]}, ("data", "classes", "ignored"), "Extra inputs"),
    ],
)
def test_a_bad_mapping_is_an_error_naming_the_field(
    classes: object, loc: tuple[str | int, ...], words: str
) -> None:
    errors = _errors(classes)
    assert any(where == loc and words in message for where, message in errors), errors


def test_a_new_class_may_keep_the_name_of_one_it_gathers() -> None:
    classes = ClassMapSpec(merge={"car": ["car", "van"]})
    names = ["person", "car", "van"]
    assert classes.problems(names) == []
    assert classes.mapped_names(names) == ["person", "car"]


def test_problems_name_what_the_dataset_lacks() -> None:
    names = ["car", "van", "person", "tree"]
    classes = ClassMapSpec(
        merge={"vehicle": ["car", "lorry"], "person": ["rider"]}, ignore=["tre", "bush"]
    )
    problems = classes.problems(names)
    assert problems == [
        (("merge", "vehicle"), "the dataset has no class 'lorry'"),
        (("merge", "person"), "the dataset has no class 'rider'"),
        (("ignore", 0), "the dataset has no class 'tre' (did you mean 'tree'?)"),
        (("ignore", 1), "the dataset has no class 'bush'"),
        (
            ("merge", "person"),
            "'person' is already a class of the dataset; list it among the classes merged "
            "into it, or choose another name",
        ),
    ]
    everything = ClassMapSpec(ignore=names)
    assert everything.problems(names) == [(("ignore",), "no class of the dataset would be left")]


def test_mapped_names_keep_the_dataset_order() -> None:
    classes = ClassMapSpec(merge={"vehicle": ["van", "car"]}, ignore=["tree"])
    assert classes.mapped_names(["tree", "person", "car", "bike", "van"]) == [
        "person",
        "vehicle",
        "bike",
    ]


def _hash_without_classes(spec: JobSpec) -> str:
    """The hash as it was computed before `data.classes` existed."""
    dumped = spec.model_dump(mode="json")
    del dumped["data"]["classes"]
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("data", [{}, {"tile": {"size": 256}}, {"max_train_images": 4}])
def test_a_spec_without_a_mapping_keeps_its_hash(data: dict[str, object]) -> None:
    spec = JobSpec.model_validate(_job(**data))
    assert spec.spec_hash() == _hash_without_classes(spec)
    explicit = _job(**data)
    explicit["data"]["classes"] = None
    assert JobSpec.model_validate(explicit).spec_hash() == spec.spec_hash()


def test_a_mapping_changes_the_hash() -> None:
    plain = JobSpec.model_validate(_job())
    merged = JobSpec.model_validate(_job({"merge": {"vehicle": ["car", "van"]}}))
    ignored = JobSpec.model_validate(_job({"ignore": ["tree"]}))
    hashes = {plain.spec_hash(), merged.spec_hash(), ignored.spec_hash()}
    assert len(hashes) == 3
    again = JobSpec.model_validate(_job({"merge": {"vehicle": ["car", "van"]}}))
    assert again.spec_hash() == merged.spec_hash()

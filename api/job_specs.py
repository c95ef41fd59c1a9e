"""Validating a submitted job spec for the platform: core.spec rules plus the team's resources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from api.bounds import MAX_ID
from api.errors import FieldErrors
from core.spec import (
    BACKBONE_OF_ARCH,
    ClassMapSpec,
    JobSpec,
    class_listing,
    statistics_class_names,
)
from store import repositories as repo
from store.db import Session
from store.models import Dataset, Teacher

SPEC_LOC: tuple[str, ...] = ("body", "spec")

# Server-side paths would let a spec read any file the worker can see (and its errors tell
# what is there): every spec field that names a file takes ids of the team's uploads only.
_LOCAL_PATH_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("data", "path", "use data.dataset_id (an uploaded dataset)"),
    ("teacher", "checkpoint", "use teacher.teacher_id (an uploaded teacher)"),
    ("teacher", "pretrained_backbone", "use teacher.backbone_id (uploaded backbone weights)"),
    ("student", "checkpoint", "student checkpoints from local paths are not allowed"),
    ("student", "pretrained_backbone", "use student.backbone_id (uploaded backbone weights)"),
)
_ID_FIELDS: tuple[tuple[str, str], ...] = (
    ("data", "dataset_id"),
    ("teacher", "teacher_id"),
    ("teacher", "backbone_id"),
    ("student", "backbone_id"),
)
MAX_CLASS_MAP_ERRORS = 20
"""Most errors one submission gets for names of `data.classes` its dataset lacks."""


@dataclass
class AcceptedSpec:
    """A spec valid for the platform, with the rows it references."""

    spec: JobSpec
    dataset: Dataset
    teacher: Teacher | None


def _error(loc: tuple[str | int, ...], msg: str, type: str = "value_error") -> dict[str, Any]:
    return {"loc": [*SPEC_LOC, *loc], "msg": msg, "type": type}


def parse_spec(raw: dict[str, Any]) -> JobSpec:
    """`raw` as a JobSpec, or a 422 listing every error with its `loc` inside the spec."""
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise FieldErrors(
            [_error(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        ) from None


def accept_spec(session: Session, *, team_id: int, raw: dict[str, Any]) -> AcceptedSpec:
    """Validate a submitted spec against core.spec and the team's ready dataset and teacher.

    The teacher's `arch` and `fpn_channels` are filled in from the referenced teacher when the
    spec leaves them out; a spec that contradicts the teacher is refused. Raises a 422 naming
    each field at fault.
    """
    spec = parse_spec(raw)
    errors: list[dict[str, Any]] = []
    for section, field, hint in _LOCAL_PATH_FIELDS:
        part = getattr(spec, section)
        if part is not None and getattr(part, field) is not None:
            errors.append(
                _error((section, field), f"local paths are not allowed on the platform; {hint}")
            )
    bad_ids = [
        _error((section, field), f"{value} is not an id (1 to {MAX_ID})")
        for section, field in _ID_FIELDS
        if (value := getattr(getattr(spec, section), field, None)) is not None
        and not 1 <= value <= MAX_ID
    ]
    if bad_ids:
        raise FieldErrors(errors + bad_ids)  # no lookup of an id the database cannot hold

    dataset: Dataset | None = None
    dataset_id = spec.data.dataset_id
    if dataset_id is None:
        errors.append(_error(("data", "dataset_id"), "a platform job needs a dataset id"))
    else:
        dataset = repo.get_dataset(session, team_id=team_id, dataset_id=dataset_id)
        if dataset is None:
            errors.append(_error(("data", "dataset_id"), f"dataset {dataset_id} not found"))
        elif dataset.status != "ready":
            errors.append(
                _error(
                    ("data", "dataset_id"),
                    f"dataset {dataset_id} is {dataset.status}, not ready",
                )
            )
        elif spec.data.classes is not None:
            errors += _class_map_errors(spec.data.classes, dataset.statistics)

    teacher: Teacher | None = None
    updates: dict[str, Any] = {}
    if spec.teacher is not None and spec.teacher.teacher_id is not None:
        teacher_id = spec.teacher.teacher_id
        teacher = repo.get_teacher(session, team_id=team_id, teacher_id=teacher_id)
        if teacher is None:
            errors.append(_error(("teacher", "teacher_id"), f"teacher {teacher_id} not found"))
        elif teacher.status != "ready":
            errors.append(
                _error(
                    ("teacher", "teacher_id"),
                    f"teacher {teacher_id} is {teacher.status}, not ready",
                )
            )
        else:
            given = spec.teacher.model_fields_set
            for field, value in (("arch", teacher.arch), ("fpn_channels", teacher.fpn_channels)):
                if field not in given:
                    updates[field] = value
                elif getattr(spec.teacher, field) != value:
                    errors.append(
                        _error(
                            ("teacher", field),
                            f"{getattr(spec.teacher, field)!r} contradicts teacher "
                            f"{teacher_id}, whose {field} is {value!r}",
                        )
                    )
    teacher_arch = updates.get("arch", spec.teacher.arch if spec.teacher else None)
    errors += _backbone_errors(session, team_id=team_id, spec=spec, teacher_arch=teacher_arch)
    if errors:
        raise FieldErrors(errors)
    assert dataset is not None
    if updates and spec.teacher is not None:
        raw_filled = spec.model_dump(mode="json", exclude_unset=False)
        raw_filled["teacher"].update(updates)
        spec = parse_spec(raw_filled)
    return AcceptedSpec(spec=spec, dataset=dataset, teacher=teacher)


def _class_map_errors(
    classes: ClassMapSpec, statistics: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """An error per name of `data.classes` that the dataset's classes (as its statistics
    count them) do not fit, each listing those classes; none if the statistics name none."""
    names = statistics_class_names(statistics)
    if not names:
        return []  # the worker checks the mapping when it opens the dataset
    listing = class_listing(names)
    return [
        _error(("data", "classes", *loc), f"{message}; the dataset's classes are {listing}")
        for loc, message in classes.problems(names)[:MAX_CLASS_MAP_ERRORS]
    ]


def _backbone_errors(
    session: Session, *, team_id: int, spec: JobSpec, teacher_arch: str | None
) -> list[dict[str, Any]]:
    """Errors of the spec's `backbone_id`s: each a ready backbone of the team, of the trunk of
    its section's architecture."""
    errors: list[dict[str, Any]] = []
    sections = (("teacher", spec.teacher, teacher_arch), ("student", spec.student, None))
    for section, part, arch_override in sections:
        if part is None or part.backbone_id is None:
            continue
        backbone_id = part.backbone_id
        arch = arch_override or part.arch
        loc = (section, "backbone_id")
        backbone = repo.get_backbone(session, team_id=team_id, backbone_id=backbone_id)
        if backbone is None:
            errors.append(_error(loc, f"backbone {backbone_id} not found"))
        elif backbone.status != "ready":
            errors.append(_error(loc, f"backbone {backbone_id} is {backbone.status}, not ready"))
        elif backbone.arch != BACKBONE_OF_ARCH.get(arch):
            errors.append(
                _error(
                    loc,
                    f"backbone {backbone_id} holds {backbone.arch} weights but {section}.arch "
                    f"{arch} is built on {BACKBONE_OF_ARCH.get(arch)}",
                )
            )
    return errors

"""The job list's summary of a spec, and which ablation preset a distill section is.

Derived from `core.spec` alone, so that every writer of a job row (the API, sweeps, the CLI)
stores the same summary (`store.repositories.create_job`) and the dashboard's form, served by
`api.spec_catalog`, names presets as the list does: a distill section *is* a preset when
every field some preset sets (`preset_fields()`) has that preset's value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from core.spec import (
    ABLATION_PRESETS,
    DataSpec,
    DistillSpec,
    ScheduleSpec,
    StudentSpec,
    TeacherSpec,
    ablation_distill,
)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of a nested mapping as (dotted path, value); lists are leaves."""
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            yield from flatten(child, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def dump_json(model: Any) -> dict[str, Any]:
    """A pydantic model as JSON-ready data."""
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped


@functools.cache
def default_distill() -> dict[str, Any]:
    """The default distill section of core.spec, as JSON."""
    return dump_json(DistillSpec())


@functools.cache
def preset_distills() -> dict[str, dict[str, Any]]:
    """Each ablation preset applied to the default distill section, as JSON."""
    base = DistillSpec()
    return {preset: dump_json(ablation_distill(base, preset)) for preset in ABLATION_PRESETS}


@functools.cache
def preset_fields() -> tuple[str, ...]:
    """Dotted paths of the distill fields some preset sets to other than the default."""
    default = dict(flatten(default_distill()))
    fields: dict[str, None] = {}
    for distill in preset_distills().values():
        for path, value in flatten(distill):
            if default.get(path) != value:
                fields[path] = None
    return tuple(fields)


def _leaf(section: Mapping[str, Any], path: str, default: Any) -> Any:
    value: Any = section
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


@functools.cache
def _presets_by_values() -> dict[tuple[Any, ...], str]:
    paths = preset_fields()
    return {
        tuple(_leaf(distill, path, None) for path in paths): preset
        for preset, distill in preset_distills().items()
    }


@functools.cache
def _preset_field_defaults() -> tuple[tuple[str, Any], ...]:
    default = default_distill()
    return tuple((path, _leaf(default, path, None)) for path in preset_fields())


def detect_preset(distill: Mapping[str, Any] | None) -> str | None:
    """The ablation preset a distill section is, or None (custom weights).

    Fields the section leaves out count as core.spec's defaults, as validation would fill them.
    """
    section = distill if isinstance(distill, Mapping) else {}
    key = tuple(_leaf(section, path, default) for path, default in _preset_field_defaults())
    return _presets_by_values().get(key)


def _section(spec: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = spec.get(name)
    return value if isinstance(value, Mapping) else None


def number_or_none(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@functools.cache
def _field_defaults() -> dict[str, Any]:
    return {
        "teacher.arch": TeacherSpec.model_fields["arch"].default,
        "student.arch": StudentSpec.model_fields["arch"].default,
        "distill.lambda_kd": DistillSpec.model_fields["lambda_kd"].default,
        "schedule.lr": ScheduleSpec.model_fields["lr"].default,
        "schedule.epochs": ScheduleSpec.model_fields["epochs"].default,
        "data.image_size": DataSpec.model_fields["image_size"].default,
    }


def spec_summary(kind: str, spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The few spec fields a job list shows (`SpecSummary`), read leniently from a stored spec.

    A stored spec is a validated `JobSpec` dump, or (rows written by hand, the demo) a partial
    mapping: absent fields read as core.spec's defaults, absent sections as None. The preset
    and lambda_kd are those of a distill job only.
    """
    spec = spec if isinstance(spec, Mapping) else {}
    defaults = _field_defaults()
    teacher, student = _section(spec, "teacher"), _section(spec, "student")
    data, schedule = _section(spec, "data") or {}, _section(spec, "schedule") or {}
    distill = _section(spec, "distill") or {}
    distilling = kind == "distill"
    return {
        "student_arch": student.get("arch", defaults["student.arch"]) if student else None,
        "teacher_arch": teacher.get("arch", defaults["teacher.arch"]) if teacher else None,
        "preset": detect_preset(distill) if distilling else None,
        "lambda_kd": (
            number_or_none(distill.get("lambda_kd", defaults["distill.lambda_kd"]))
            if distilling
            else None
        ),
        "lr": number_or_none(schedule.get("lr", defaults["schedule.lr"])),
        "epochs": _integer(schedule.get("epochs", defaults["schedule.epochs"])),
        "image_size": _integer(data.get("image_size", defaults["data.image_size"])),
    }

"""The job spec as its clients need it, derived from `core.spec` alone: the one owner.

`GET /spec/schema` serves `spec_catalog()` (JSON Schema, architectures, defaults, ablation
presets) and the dashboard's form reads it instead of keeping a copy. The job list's
`spec_summary` is built here too, so that the list and the form name presets alike: a distill
section *is* a preset when every field some preset sets (`preset_fields()`) has that preset's
value.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, get_args

from api.comparison import flatten
from core.spec import (
    ABLATION_PRESETS,
    LEVEL_NAMES,
    DataSpec,
    DistillSpec,
    JobSpec,
    LevelWeights,
    ScheduleSpec,
    StudentArch,
    StudentSpec,
    TeacherArch,
    TeacherSpec,
    ablation_distill,
)

PRESET_WORDS: dict[str, tuple[str, str]] = {
    "no_kd": ("No KD", "Baseline: the student learns from labels only."),
    "response": (
        "Response KD",
        "KD on the classification logits (LD / CrossKD normalisation: by the positive "
        "anchors, with temperature).",
    ),
    "pkd": (
        "PKD",
        "Pearson-correlation feature imitation on every cell of P2–P5 through a learned "
        "adapter (PKD, NeurIPS 2022).",
    ),
    "single_level": ("Single-level", "Feature KD at P3 only (all three terms)."),
    "hierarchical": (
        "Hierarchical",
        "Spatial, semantic and context KD at every level P2–P5 (the paper's method).",
    ),
}
"""How the dashboard names each ablation preset of core.spec (a new one is named by its id)."""


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped


@functools.cache
def default_distill() -> dict[str, Any]:
    """The default distill section of core.spec, as JSON."""
    return _dump(DistillSpec())


@functools.cache
def preset_distills() -> dict[str, dict[str, Any]]:
    """Each ablation preset applied to the default distill section, as JSON."""
    base = DistillSpec()
    return {preset: _dump(ablation_distill(base, preset)) for preset in ABLATION_PRESETS}


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


@functools.cache
def spec_catalog() -> dict[str, Any]:
    """What `GET /spec/schema` answers (`SpecCatalogPublic`): computed once per process."""
    presets = []
    for preset, distill in preset_distills().items():
        label, description = PRESET_WORDS.get(preset, (preset.replace("_", " ").title(), ""))
        presets.append(
            {"id": preset, "label": label, "description": description, "distill": distill}
        )
    return {
        "json_schema": JobSpec.model_json_schema(),
        "kinds": list(get_args(JobSpec.model_fields["kind"].annotation)),
        "levels": list(LEVEL_NAMES),
        "terms": list(LevelWeights.model_fields),
        "architectures": {
            "teacher": list(get_args(TeacherArch)),
            "student": list(get_args(StudentArch)),
        },
        "defaults": {
            # DataSpec needs a path or a dataset id to validate; its defaults are still these.
            "data": _dump(DataSpec.model_construct()),
            "teacher": _dump(TeacherSpec()),
            "student": _dump(StudentSpec()),
            "distill": default_distill(),
            "schedule": _dump(ScheduleSpec()),
            "seed": JobSpec.model_fields["seed"].default,
        },
        "presets": presets,
        "preset_fields": list(preset_fields()),
    }

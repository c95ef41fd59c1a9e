"""The job spec as its clients need it, derived from `core.spec` alone: the one owner.

`GET /spec/schema` serves `spec_catalog()` (JSON Schema, architectures, defaults, ablation
presets) and the dashboard's form reads it instead of keeping a copy. Presets are detected
and named by `core.spec_summary`, which also makes the job list's summary of a spec.
"""

from __future__ import annotations

import functools
from typing import Any, get_args

from core.spec import (
    LEVEL_NAMES,
    DataSpec,
    JobSpec,
    LevelWeights,
    ScheduleSpec,
    StudentArch,
    StudentSpec,
    TeacherArch,
    TeacherSpec,
)
from core.spec_summary import default_distill, dump_json, preset_distills, preset_fields

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
            "data": dump_json(DataSpec.model_construct()),
            "teacher": dump_json(TeacherSpec()),
            "student": dump_json(StudentSpec()),
            "distill": default_distill(),
            "schedule": dump_json(ScheduleSpec()),
            "seed": JobSpec.model_fields["seed"].default,
        },
        "presets": presets,
        "preset_fields": list(preset_fields()),
    }

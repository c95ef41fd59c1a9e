"""The job specification: field errors, kind rules, ablation presets, hashing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.spec import (
    ABLATION_PRESETS,
    DEFAULT_LAMBDA_KD,
    DistillSpec,
    JobSpec,
    LevelWeights,
    ablation_distill,
)


def _distill_job(**distill: object) -> dict[str, object]:
    return {
        "kind": "distill",
        "data": {"path": "data"},
        "teacher": {"checkpoint": "teacher.safetensors"},
        "student": {},
        "distill": distill,
    }


def test_a_typo_is_an_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(_distill_job(lambda_k=0.5))
    locs = [error["loc"] for error in info.value.errors()]
    assert ("distill", "lambda_k") in locs


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown level"):
        JobSpec.model_validate(_distill_job(levels={"p9": {}}))


def test_distillation_needs_a_teacher_checkpoint() -> None:
    job = _distill_job()
    job["teacher"] = {}
    with pytest.raises(ValidationError, match="checkpoint"):
        JobSpec.model_validate(job)


def test_presets_switch_the_right_terms_even_from_a_no_kd_base() -> None:
    base = ablation_distill(DistillSpec(), "no_kd")
    assert not base.enabled
    variants = {name: ablation_distill(base, name) for name in ABLATION_PRESETS}
    assert not variants["no_kd"].enabled
    assert variants["response"].response > 0 and not variants["response"].feature_kd_enabled
    single = variants["single_level"]
    assert [n for n, w in single.levels.items() if w.spatial or w.semantic or w.context] == ["p3"]
    full = variants["hierarchical"]
    assert full.response == 0.0 and full.lambda_kd == DEFAULT_LAMBDA_KD
    assert all(w == LevelWeights() for w in full.levels.values())


def test_spec_hash_changes_with_any_weight() -> None:
    one = JobSpec.model_validate(_distill_job())
    two = JobSpec.model_validate(_distill_job(levels={"p2": {"spatial": 0.5}}))
    assert one.spec_hash() == JobSpec.model_validate(_distill_job()).spec_hash()
    assert one.spec_hash() != two.spec_hash()

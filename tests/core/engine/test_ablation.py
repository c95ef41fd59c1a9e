"""Ablation variants, their summary table, the demo presets and `--set` overrides."""

from __future__ import annotations

import pytest

from cli.run import SpecFileError, apply_override
from core.pipeline.ablation import format_ablation_table, summarize, variant_spec
from core.pipeline.demo import DEMO_PRESETS, demo_specs
from core.spec import JobSpec

BASE = JobSpec.model_validate(
    {
        "kind": "distill",
        "data": {"path": "data"},
        "teacher": {"checkpoint": "t.safetensors"},
        "student": {},
        "distill": {"response": 0.5},
        "seed": 7,
    }
)


def test_variants_keep_everything_but_the_kd_weights() -> None:
    specs = {v: variant_spec(BASE, v, seed=3) for v in ("no_kd", "single_level", "hierarchical")}
    assert not specs["no_kd"].distill.enabled
    single = specs["single_level"].distill
    assert [n for n, w in single.levels.items() if w.spatial or w.semantic or w.context] == ["p3"]
    assert specs["hierarchical"].distill.response == 0.0
    for spec in specs.values():
        assert spec.seed == 3 and spec.schedule == BASE.schedule and spec.student == BASE.student
    with pytest.raises(ValueError, match="distill"):
        variant_spec(BASE.model_copy(update={"kind": "teacher"}), "no_kd", seed=0)


def test_table_shows_teacher_and_mean_std_over_seeds() -> None:
    def runs(*aps: float) -> dict:
        entries = [{"seed": i, "metrics": dict.fromkeys(("AP", "AP_small", "AP50", "AP75"), ap)}
                   for i, ap in enumerate(aps)]  # fmt: skip
        return {"runs": entries, "summary": {k: summarize(aps) for k in entries[0]["metrics"]}}

    result = {
        "seeds": [0, 1],
        "teacher": dict.fromkeys(("AP", "AP_small", "AP50", "AP75"), 0.5),
        "variants": {"no_kd": runs(0.1, 0.2), "hierarchical": runs(0.3, 0.3)},
    }
    table = format_ablation_table(result).splitlines()
    assert table[0].split() == ["variant", "AP", "AP_small", "AP50", "AP75"]
    assert table[2].split() == ["teacher", "50.0", "50.0", "50.0", "50.0"]
    assert table[3].split()[:2] == ["no_kd", "15.0±7.1"]
    assert table[4].split()[1] == "30.0±0.0"


def test_demo_presets_build_valid_specs(tmp_path) -> None:
    for build in DEMO_PRESETS.values():
        preset = build()
        teacher, distill = demo_specs(preset, tmp_path, tmp_path / "t.safetensors")
        assert teacher.kind == "teacher" and distill.kind == "distill"
        assert distill.student is not None and distill.student.arch == "retinanet_mobilenet_v2_fpn"
        assert "no_kd" in preset.variants and "hierarchical" in preset.variants
        on = {n for n, w in distill.distill.levels.items() if w.spatial or w.semantic or w.context}
        assert on == set(preset.kd_levels)


def test_quick_demo_distils_the_small_object_levels_only(tmp_path) -> None:
    _, distill = demo_specs(DEMO_PRESETS["quick"](), tmp_path, tmp_path / "t.safetensors")
    levels = distill.distill.levels
    assert levels["p2"].spatial == levels["p3"].context == 1.0
    assert levels["p4"].spatial == levels["p5"].semantic == levels["p5"].context == 0.0


def test_overrides_set_nested_values_parsed_as_yaml() -> None:
    data: dict = {"schedule": {"epochs": 12}}
    apply_override(data, "schedule.epochs=3")
    apply_override(data, "distill.levels.p2.spatial=0.5")
    apply_override(data, "student.checkpoint=null")
    assert data == {
        "schedule": {"epochs": 3},
        "distill": {"levels": {"p2": {"spatial": 0.5}}},
        "student": {"checkpoint": None},
    }
    with pytest.raises(SpecFileError, match="not a section"):
        apply_override(data, "schedule.epochs.x=1")


def test_pkd_and_response_variants_are_the_published_baselines() -> None:
    pkd = variant_spec(BASE, "pkd", seed=0).distill
    assert pkd.lambda_kd == 3.0  # PKD's loss weight 6 on MSE / 2
    assert all(w.spatial == 1.0 and not (w.semantic or w.context) for w in pkd.levels.values())
    assert pkd.spatial.adapter == "learned" and not pkd.spatial.masked and pkd.spatial.normalize
    assert not pkd.balance_levels and pkd.response == pkd.box == pkd.head == 0.0
    response = variant_spec(BASE, "response", seed=0).distill
    assert response.response == 0.5 and not response.feature_kd_enabled and response.enabled
    base = BASE.model_copy(
        update={"distill": BASE.distill.model_copy(update={"box": 1.0, "head": 2.0})}
    )
    hierarchical = variant_spec(base, "hierarchical", seed=0).distill
    assert (hierarchical.response, hierarchical.box, hierarchical.head) == (0.0, 0.0, 2.0)
    assert variant_spec(base, "response", seed=0).distill.box == 1.0
    assert not variant_spec(base, "no_kd", seed=0).distill.enabled

"""The demo's claim, checked per seed: AP_small of teacher > hierarchical KD > no KD."""

from __future__ import annotations

from typing import Any

from core.pipeline.demo import seed_ordering


def _result(teacher: float, hkd: list[float], no_kd: list[float]) -> dict[str, Any]:
    def runs(values: list[float]) -> dict[str, Any]:
        return {"runs": [{"seed": s, "metrics": {"AP_small": v}} for s, v in enumerate(values)]}

    return {
        "teacher": {"AP_small": teacher},
        "variants": {"no_kd": runs(no_kd), "hierarchical": runs(hkd)},
    }


def test_the_order_holds_when_every_seed_has_it() -> None:
    ordering = seed_ordering(_result(0.12, [0.06, 0.05, 0.07], [0.02, 0.03, 0.01]))
    assert ordering["holds"] is True
    assert ordering["lines"][0] == "seed 0: teacher 12.0, HKD 6.0, no KD 2.0: in order"
    assert len(ordering["lines"]) == 3


def test_one_seed_out_of_order_breaks_the_claim_and_is_named() -> None:
    ordering = seed_ordering(_result(0.12, [0.06, 0.02, 0.07], [0.02, 0.03, 0.01]))
    assert ordering["holds"] is False
    assert ordering["lines"][1].endswith(": NOT in order")
    assert ordering["lines"][0].endswith(": in order")


def test_a_student_above_the_teacher_breaks_it_too() -> None:
    assert seed_ordering(_result(0.05, [0.06], [0.02]))["holds"] is False


def test_without_both_variants_nothing_is_claimed() -> None:
    result = _result(0.12, [0.06], [0.02])
    del result["variants"]["no_kd"]
    assert seed_ordering(result) == {"holds": None, "lines": []}

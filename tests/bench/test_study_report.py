"""The study's verdict and markdown are computed from the records (fabricated here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.study.aggregate import Stat, gap_closed, judge, metric_stat
from bench.study.plan import SCALES, plan_runs, plan_schedule, student_schedule, variant_distill
from bench.study.report import StudyContext, render_report
from bench.study.runner import RunRecord
from bench.study.schedule import kd_gains, render_schedule
from core.spec import DistillSpec

MACHINE = {
    "date": "2026-11-25 12:00 UTC",
    "cpu": "Test CPU",
    "cores": 2,
    "python": "3.11",
    "torch": "2.14.1",
    "threads": 2,
    "device": "cpu",
}


def _record(track: str, variant: str, seed: int, ap_small: float) -> RunRecord:
    role = "teacher" if variant == "teacher" else "student"
    scores = {
        "AP": ap_small + 0.05,
        "AP50": 0.5,
        "AP75": 0.2,
        "AP_small": ap_small,
        "AP_medium": 0.4,
        "AP_large": -1.0,
    }
    efficiency = {"params": 2e6 if role == "student" else 2e7, "gflops": 1.0, "latency_ms": 5.0}
    return RunRecord(
        key=f"{track}/{variant}/seed{seed}",
        track=track,
        group="teacher" if role == "teacher" else "main",
        variant=variant,
        seed=seed,
        metrics={role: scores, "efficiency": {role: efficiency}},
        seconds=60.0,
    )


def _records(small: dict[str, list[float]], teacher: float) -> list[RunRecord]:
    records = [_record("coco", "teacher", 0, teacher)]
    for variant, values in small.items():
        records += [_record("coco", variant, seed, v) for seed, v in enumerate(values)]
    return records


def _render(records: list[RunRecord], tmp_path: Path) -> str:
    ctx = StudyContext(
        scale=SCALES["cpu"],
        command="python -m bench.study --scale cpu",
        machine=MACHINE,
        data_counts={"coco": {"test": {"images": 100, "boxes": 300}}},
        wall_seconds=120.0,
    )
    return render_report(records, ctx, tmp_path / "results.md")


def test_report_says_met_when_hkd_clearly_wins(tmp_path: Path) -> None:
    small = {
        "no_kd": [0.10, 0.11, 0.12],
        "response": [0.11, 0.12, 0.13],
        "pkd": [0.12, 0.13, 0.14],
        "single_level": [0.13, 0.14, 0.15],
        "hierarchical": [0.24, 0.25, 0.26],
    }
    text = _render(_records(small, teacher=0.30), tmp_path)
    assert "**Target MET**" in text
    # (0.25 - 0.11) / (0.30 - 0.11) = 74 %
    assert "74%" in text
    assert "25.0 ± 1.0" in text
    assert "n/a" in text  # AP_large of -1 is not applicable, not zero
    # Every table's header line names the scored split and its image count.
    assert "_Scale `cpu`, test split (100 images), " in text


def test_report_says_not_met_within_seed_spread(tmp_path: Path) -> None:
    small = {
        "no_kd": [0.10, 0.11, 0.12],
        "response": [0.11, 0.12, 0.13],
        "pkd": [0.12, 0.13, 0.14],
        "single_level": [0.20, 0.25, 0.30],
        "hierarchical": [0.22, 0.26, 0.30],
    }
    text = _render(_records(small, teacher=0.30), tmp_path)
    assert "**Target NOT MET**" in text
    assert "single_level: HKD +1.00 AP_small points" in text and "NOT beaten" in text


def test_report_cannot_decide_with_one_seed(tmp_path: Path) -> None:
    small = {v: [0.1] for v in ("no_kd", "response", "pkd", "single_level", "hierarchical")}
    text = _render(_records(small, teacher=0.3), tmp_path)
    assert "**Target CANNOT BE DECIDED**" in text


def test_gap_closed_needs_a_positive_gap() -> None:
    assert gap_closed(0.2, 0.1, 0.3) == pytest.approx(0.5)
    assert gap_closed(0.2, 0.3, 0.3) is None
    verdict = judge({"hierarchical": Stat((0.2, 0.21)), "no_kd": Stat((0.3, 0.31))}, 0.25)
    assert verdict.met is False


def test_metric_stat_skips_not_applicable() -> None:
    stat = metric_stat([{"AP_large": -1.0}, {"AP_large": 0.5}, {}], "AP_large")
    assert stat.values == (0.5,) and stat.std is None


def test_ablation_variants_switch_off_one_level_or_term() -> None:
    no_p2 = variant_distill(DistillSpec(), "drop_p2")
    assert no_p2.levels["p2"].spatial == 0 and no_p2.levels["p3"].spatial == 1
    no_context = variant_distill(DistillSpec(), "drop_context")
    assert all(w.context == 0 and w.semantic == 1 for w in no_context.levels.values())
    assert not variant_distill(DistillSpec(), "no_kd").enabled


def test_plan_trains_each_teacher_first() -> None:
    runs = plan_runs(SCALES["cpu"])
    assert runs[0].variant == "teacher" and runs[0].track == "coco"
    voc = [r for r in runs if r.track == "voc"]
    assert voc[0].variant == "teacher"
    assert len({r.key for r in runs}) == len(runs)


def test_schedule_candidates_change_only_the_schedule() -> None:
    scale = SCALES["cpu"]
    runs = {run.variant: run for run in plan_schedule(scale)}
    assert runs["teacher"].group == "teacher" and "sched_hkd_x3" in runs
    assert student_schedule(scale, "hierarchical") == (scale.student_epochs, 0)
    assert student_schedule(scale, "sched_hkd_x3") == (3 * scale.student_epochs, 0)
    assert student_schedule(scale, "sched_hkd_finetune")[1] == scale.student_epochs // 2
    base = DistillSpec()
    assert variant_distill(base, "sched_no_kd_x3") == variant_distill(base, "no_kd")
    assert variant_distill(base, "sched_hkd_x3") == variant_distill(base, "hierarchical")


def test_schedule_report_gives_the_kd_gain_at_each_length(tmp_path: Path) -> None:
    records = _records(
        {"no_kd": [0.02], "hierarchical": [0.06], "sched_no_kd_x3": [0.05], "sched_hkd_x3": [0.07]},
        teacher=0.13,
    )
    records.append(_record("coco", "sched_hkd_finetune", 0, 0.065))
    gains = kd_gains(records)
    assert gains["1x"] == pytest.approx(0.04) and gains["3x"] == pytest.approx(0.02)
    ctx = StudyContext(
        scale=SCALES["cpu"],
        command="python -m bench.study --schedule",
        machine=MACHINE,
        data_counts={},
        wall_seconds=1.0,
        split="val",
    )
    text = render_schedule(records, ctx)
    epochs = SCALES["cpu"].student_epochs
    assert f"| HKD, 3x the epochs | {3 * epochs} | 0 | 1 |" in text
    assert f"- {epochs} epochs (1x): +4.0 (36 % of the gap closed)" in text
    assert f"- {3 * epochs} epochs (3x): +2.0 (25 % of the gap closed)" in text
    assert "the fine-tune stage after HKD: +0.5 AP_small" in text

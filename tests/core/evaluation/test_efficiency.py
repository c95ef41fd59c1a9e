"""Efficiency figures: parameters, GFLOPs and latency of a student and a teacher."""

from __future__ import annotations

import torch

from core.evaluation.efficiency import count_gflops, efficiency_ratios, efficiency_report
from core.models.detectors import build_student, build_teacher


def test_student_costs_less_than_teacher_and_figures_are_positive() -> None:
    cpu = torch.device("cpu")
    student = build_student(
        arch="retinanet_mobilenet_v2_fpn", num_classes=3, image_size=64, fpn_channels=16
    )
    teacher = build_teacher(
        arch="retinanet_resnet18_fpn", num_classes=3, image_size=64, fpn_channels=32
    )
    eff_student = efficiency_report(student, image_size=64, device=cpu, repeats=2)
    eff_teacher = efficiency_report(teacher, image_size=64, device=cpu, repeats=2)
    for eff in (eff_student, eff_teacher):
        assert eff["params"] > 0 and eff["gflops"] > 0 and eff["latency_ms"] > 0
        assert eff["device"].startswith("cpu")
    assert eff_student["params"] < eff_teacher["params"]
    assert eff_student["gflops"] < eff_teacher["gflops"]
    ratios = efficiency_ratios(eff_student, eff_teacher)
    assert ratios is not None and 0 < ratios["params"] < 1
    # FLOPs grow with the square of the image side.
    assert count_gflops(student, image_size=128) > 3 * eff_student["gflops"]
    assert student.training  # measuring leaves the mode as it was

"""The evaluation report of a job (report.md): accuracy and cost of student vs teacher."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.evaluation.coco import METRIC_NAMES
from core.spec import JobSpec


def _ap(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    return "n/a" if value < 0 else f"{100 * value:.1f}"


def _number(value: Any, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "–"


def accuracy_table(rows: Sequence[tuple[str, dict[str, Any] | None]]) -> list[str]:
    """Markdown lines of a COCO AP table (AP in percent) with one row per named model."""
    lines = [
        "| model | " + " | ".join(METRIC_NAMES) + " |",
        "|---" * (len(METRIC_NAMES) + 1) + "|",
    ]
    for name, metrics in rows:
        if metrics is not None:
            lines.append(
                f"| {name} | " + " | ".join(_ap(metrics.get(m)) for m in METRIC_NAMES) + " |"
            )
    return lines


def diagnosis_lines(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines of the distillation diagnosis: level pairs, gradient norms, absorption."""
    lines: list[str] = []
    pairs = metrics.get("distill/pairs")
    if pairs:
        lines += ["", "## Distillation pairs (student level <- teacher level)", ""]
        lines += [f"- {student} <- {teacher}" for student, teacher in pairs.items()]
    grads = metrics.get("kd/grad")
    if grads:
        steps = grads.get("steps", [])
        lines += [
            "",
            f"## Gradient norm on the student per term ({len(steps)} diagnosed steps)",
            "",
            "A term whose norm is far below `det/grad` teaches little; far above, it drowns the "
            "labels.",
            "",
            "| series | first | last | mean |",
            "|---|---|---|---|",
        ]
        for name, stats in grads.items():
            if isinstance(stats, dict):
                lines.append(
                    f"| {name} | {stats['first']:.3g} | {stats['last']:.3g} | {stats['mean']:.3g} |"
                )
    absorbed = metrics.get("kd/absorbed")
    if absorbed:
        lines += [
            "",
            "## What the adapters alone leave of each term (held-out batch, at init)",
            "",
            "1.00: the adapters cannot satisfy the term; near 0: it teaches the student nothing.",
            "",
            "| term | share left |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.2f} |" for name, value in absorbed.items()]
    return lines


PICTURE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("attention", "Attention (teacher above, student below; GT boxes in green)"),
    (
        "gradcam",
        "Grad-CAM of the top detections per level (teacher above, student below; explained "
        "boxes in white, GT in green)",
    ),
    (
        "boxes",
        "Predicted boxes (teacher left, student right): true positives green, false positives "
        "red, missed objects amber (IoU 0.5)",
    ),
)
"""Report sections of the job's pictures, by file name prefix (`attention_01.png`, ...)."""


def picture_lines(path: Path, pictures: Sequence[Path]) -> list[str]:
    """Markdown lines linking the pictures under one heading per kind."""
    lines: list[str] = []
    for prefix, heading in PICTURE_SECTIONS:
        chosen = [p for p in pictures if p.stem.startswith(f"{prefix}_")]
        if chosen:
            lines += ["", f"## {heading}", ""]
            lines += [f"![{p.stem}]({p.relative_to(path.parent)})" for p in chosen]
    known = tuple(f"{prefix}_" for prefix, _ in PICTURE_SECTIONS)
    others = [p for p in pictures if not p.stem.startswith(known)]
    if others:
        lines += ["", "## Pictures", ""]
        lines += [f"![{p.stem}]({p.relative_to(path.parent)})" for p in others]
    return lines


def write_report(
    path: Path, *, spec: JobSpec, metrics: dict[str, Any], pictures: Sequence[Path] = ()
) -> Path:
    """Write report.md for a job's metrics.json document."""
    title = spec.name or f"{spec.kind} job"
    lines = [f"# {title}", "", f"Kind: `{spec.kind}`; spec hash `{metrics['spec_hash']}`.", ""]
    if spec.teacher is not None:
        lines.append(f"Teacher: `{spec.teacher.arch}` (FPN {spec.teacher.fpn_channels} channels).")
    if spec.student is not None:
        lines.append(f"Student: `{spec.student.arch}` (FPN {spec.student.fpn_channels} channels).")
    if spec.kind == "distill":
        enabled = "on" if spec.distill.enabled else "off"
        lines.append(f"Distillation: {enabled}, lambda_KD = {spec.distill.lambda_kd}.")
    lines += ["", "## Accuracy (COCO, %; n/a: no such objects in the ground truth)", ""]
    evaluation = metrics.get("evaluation") or {}
    if evaluation.get("mode") == "sliced":
        lines += [
            f"On the full `{evaluation['split']}` images by sliced inference: tiles of "
            f"{evaluation['tile_size']} px, overlap {evaluation['overlap']}, merged "
            f"{evaluation['merge']}{', with the whole image' if evaluation['full_image'] else ''}"
            f" (data.tile).",
            "",
        ]
    rows = [("teacher", metrics.get("teacher")), ("student", metrics.get("student"))]
    lines += accuracy_table(rows)
    efficiency = metrics.get("efficiency") or {}
    lines += ["", "## Cost (batch 1)", ""]
    lines += [
        "| model | parameters (M) | GFLOPs | latency (ms) | device |",
        "|---|---|---|---|---|",
    ]
    for name in ("teacher", "student"):
        eff = efficiency.get(name)
        if eff:
            lines.append(
                f"| {name} | {eff['params'] / 1e6:.2f} | {_number(eff['gflops'])} | "
                f"{_number(eff['latency_ms'], 1)} | {eff['device']} |"
            )
    ratios = efficiency.get("ratios")
    if ratios:
        lines += [
            "",
            f"Student / teacher: parameters x{_number(ratios['params'])}, "
            f"GFLOPs x{_number(ratios['gflops'])}, latency x{_number(ratios['latency'])}.",
        ]
    per_class = (metrics.get("student") or metrics.get("teacher") or {}).get("per_class") or {}
    if per_class:
        lines += ["", "## AP per class (%)", "", "| class | AP |", "|---|---|"]
        lines += [f"| {name} | {_ap(value)} |" for name, value in per_class.items()]
    lines += diagnosis_lines(metrics)
    if "export" in metrics:
        diff = metrics["export"].get("onnx_max_abs_diff")
        lines += ["", f"ONNX export: onnxruntime vs PyTorch max |diff| = {diff:.2e}."]
    lines += picture_lines(path, pictures)
    path.write_text("\n".join(lines) + "\n")
    return path

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


def _ms(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def latency_text(efficiency: dict[str, Any] | None, *, onnx: bool = False) -> str:
    """A model's latency as `median ms (p10–p90 a–b, n repeats, device)`, PyTorch or (with
    `onnx`) ONNX Runtime; `spread not measured` for a median stored alone (older metrics)."""
    prefix = "onnx_" if onnx else ""
    figures = efficiency or {}
    median = figures.get(f"{prefix}latency_ms")
    if isinstance(median, bool) or not isinstance(median, int | float):
        return "–"
    device = figures.get(f"{prefix}device") or ("cpu (onnxruntime)" if onnx else None)
    low, high = figures.get(f"{prefix}latency_p10_ms"), figures.get(f"{prefix}latency_p90_ms")
    repeats = figures.get(f"{prefix}latency_repeats")
    if isinstance(low, int | float) and isinstance(high, int | float):
        parts = [f"p10–p90 {_ms(low)}–{_ms(high)}"]
        if isinstance(repeats, int):
            parts.append(f"{repeats} repeats")
    else:
        parts = ["spread not measured"]
    if device:
        parts.append(str(device))
    return f"{_ms(median)} ms ({', '.join(parts)})"


def cost_table(efficiency: dict[str, Any]) -> list[str]:
    """Markdown lines of the cost table: parameters, GFLOPs, PyTorch latency and, where
    measured, ONNX Runtime latency, one row per model."""
    models = [(name, efficiency.get(name)) for name in ("teacher", "student")]
    with_onnx = any(eff and "onnx_latency_ms" in eff for _, eff in models)
    header = "| model | parameters (M) | GFLOPs | latency, PyTorch |"
    header += " latency, ONNX Runtime |" if with_onnx else ""
    lines = [header, "|---" * (5 if with_onnx else 4) + "|"]
    for name, eff in models:
        if eff:
            row = (
                f"| {name} | {eff['params'] / 1e6:.2f} | {_number(eff['gflops'])} | "
                f"{latency_text(eff)} |"
            )
            lines.append(row + (f" {latency_text(eff, onnx=True)} |" if with_onnx else ""))
    return lines


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


def evaluated_images(metrics: dict[str, Any]) -> int | None:
    """How many images the val figures come from: `evaluation.images`, or in metrics written
    before it `dataset.val_images` (the same count, after data.max_val_images); None if
    neither is there."""
    for section, key in (("evaluation", "images"), ("dataset", "val_images")):
        value = (metrics.get(section) or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _images_text(count: int, *, full: bool = False) -> str:
    noun = "image" if count == 1 else "images"
    return f"{count} {'full ' if full else ''}{noun}"


def evaluation_line(metrics: dict[str, Any], spec: JobSpec) -> str:
    """The sentence above the accuracy table: the split, how many of its images and how they
    were scored (letterboxed, or sliced with the tile grid); the spec stands in for metrics
    without an `evaluation` record."""
    evaluation = metrics.get("evaluation") or {}
    split = evaluation.get("split", spec.data.val_split)
    count = evaluated_images(metrics)
    if evaluation.get("mode") == "sliced":
        images = "the full images" if count is None else _images_text(count, full=True)
        whole = ", with the whole image" if evaluation.get("full_image") else ""
        return (
            f"Evaluated on the `{split}` split: {images} by sliced inference: tiles of "
            f"{evaluation.get('tile_size')} px, overlap {evaluation.get('overlap')}, merged "
            f"{evaluation.get('merge')}{whole} (data.tile)."
        )
    size = evaluation.get("image_size", spec.data.image_size)
    images = "" if count is None else f": {_images_text(count)}"
    return f"Evaluated on the `{split}` split{images}, letterboxed to {size} px."


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


def export_lines(export: dict[str, Any] | None) -> list[str]:
    """The ONNX exports' parity with PyTorch: student.onnx, student_detections.onnx (or why
    there is none)."""
    if not export:
        return []
    lines = [""]
    diff = export.get("onnx_max_abs_diff")
    if diff is not None:
        lines.append(f"ONNX export: onnxruntime vs PyTorch max |diff| = {diff:.2e}.")
    if export.get("detections_max_abs_diff") is not None:
        lines.append(
            "ONNX export with post-processing (`student_detections.onnx`: boxes, scores, "
            f"labels): max |diff| = {export['detections_max_abs_diff']:.2e} over "
            f"{export.get('detections_checked', '?')} detections of a val image."
        )
    elif export.get("detections_error"):
        lines.append(f"No ONNX export with post-processing: {export['detections_error']}")
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
    lines += [evaluation_line(metrics, spec), ""]
    rows = [("teacher", metrics.get("teacher")), ("student", metrics.get("student"))]
    lines += accuracy_table(rows)
    efficiency = metrics.get("efficiency") or {}
    lines += ["", "## Cost (batch 1)", ""]
    cost = cost_table(efficiency)
    lines += cost
    if len(cost) > 2:
        lines += [
            "",
            "Latency: the median of timed runs after warm-up, with the 10th–90th percentile "
            "range of those runs, their count and the device; two latencies whose ranges "
            "overlap are not told apart.",
        ]
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
    lines += export_lines(metrics.get("export"))
    lines += picture_lines(path, pictures)
    path.write_text("\n".join(lines) + "\n")
    return path

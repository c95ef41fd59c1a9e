"""The study's markdown report, computed from the run records only (no number is typed in)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.machine import format_machine
from bench.study.aggregate import GAP_TARGET, METRICS, Stat, gap_closed, judge, metric_stat
from bench.study.plan import MAIN_VARIANTS, TEACHER, VARIANT_LABELS, Scale
from bench.study.runner import RunRecord
from core.spec import DEFAULT_LAMBDA_KD


@dataclass
class StudyContext:
    """Everything the report states besides the runs: how, where and on what it was made."""

    scale: Scale
    command: str
    machine: dict[str, Any]
    data_counts: dict[str, dict[str, dict[str, int]]]  # track -> split -> {images, boxes}
    wall_seconds: float
    pictures: list[Path] = field(default_factory=list)
    split: str = "test"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def mean_std(stat: Stat) -> str:
    """`mean ± std` in percent, the mean alone with one seed, n/a without values."""
    if stat.mean is None:
        return "n/a"
    if stat.std is None:
        return f"{100 * stat.mean:.1f}"
    return f"{100 * stat.mean:.1f} ± {100 * stat.std:.1f}"


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _label(variant: str) -> str:
    return VARIANT_LABELS.get(variant, variant)


def _records(
    records: Sequence[RunRecord], *, track: str, variant: str, seeds: Sequence[int] | None = None
) -> list[RunRecord]:
    return [
        r
        for r in records
        if r.track == track and r.variant == variant and r.ok and (seeds is None or r.seed in seeds)
    ]


def _scores(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    return [r.scores() for r in records]


def _teacher_scores(records: Sequence[RunRecord], track: str) -> dict[str, Any]:
    found = _records(records, track=track, variant=TEACHER)
    return found[0].scores() if found else {}


def _machine(ctx: StudyContext) -> str:
    return format_machine(ctx.machine).removeprefix("machine: ")


def _scored_split(ctx: StudyContext) -> str:
    """`test split (200 images)`: the split every model is scored on, with its image count
    where the tracks' counts agree (the VOC track holds the same images)."""
    counts = {c[ctx.split]["images"] for c in ctx.data_counts.values() if ctx.split in c}
    if len(counts) != 1:
        return f"{ctx.split} split"
    return f"{ctx.split} split ({counts.pop()} images)"


def _provenance(ctx: StudyContext) -> str:
    return f"_Scale `{ctx.scale.name}`, {_scored_split(ctx)}, {_machine(ctx)}._"


def verdict_section(records: Sequence[RunRecord], ctx: StudyContext) -> list[str]:
    """The target and whether the numbers meet it, with the reasons."""
    teacher_small = _teacher_scores(records, "coco").get("AP_small")
    ap_small = {
        v: metric_stat(_scores(_records(records, track="coco", variant=v)), "AP_small")
        for v in MAIN_VARIANTS
    }
    verdict = judge(ap_small, teacher_small)
    state = {True: "MET", False: "NOT MET", None: "CANNOT BE DECIDED"}[verdict.met]
    lines = [
        "## Verdict",
        "",
        "Target: hierarchical KD above every other variant on AP_small by more than the seed "
        "spread (difference of means larger than the sum of the two standard deviations), "
        f"closing at least {100 * GAP_TARGET:.0f}% of the teacher–student AP_small gap.",
        "",
        f"**Target {state}** at scale `{ctx.scale.name}` (computed from the numbers below).",
        "",
    ]
    lines += [f"- {reason}" for reason in verdict.reasons]
    if ctx.scale.name == "smoke":
        lines += [
            "",
            "This is the smoke scale: one epoch of a few steps on tiny images. It proves that "
            "the pipeline and this report work; its numbers are no evidence either way.",
        ]
    if ctx.split != "test":
        lines += [
            "",
            f"Scored on the {ctx.split} split (a tuning run): not the reported evidence.",
        ]
    return [*lines, ""]


def setup_section(ctx: StudyContext) -> list[str]:
    """Data, models and schedule of the study."""
    s = ctx.scale
    teacher_lr: dict[str, float] = dict(s.teacher_lr)
    lines = [
        "## Setup",
        "",
        f"- Scale `{s.name}`: {s.description}.",
        f"- Machine: {_machine(ctx)}.",
        f"- Wall time of this invocation: {ctx.wall_seconds / 60:.1f} min "
        "(runs cached from an earlier invocation are not counted).",
        f"- Data: the offline synthetic small-object benchmark (`distillery data synth`), "
        f"{s.image_size} px; train/val generated with seed {s.data_seed}, the reported **test** "
        f"split generated apart with seed {s.test_seed} (never used in training or for any "
        f"choice). Every model here is scored on the **{ctx.split}** split, once, at the end "
        "of its training.",
    ]
    for track, counts in ctx.data_counts.items():
        parts = ", ".join(
            f"{n}: {c['images']} images / {c['boxes']} boxes" for n, c in counts.items()
        )
        lines.append(f"  - {track} track: {parts}")
    lines += [
        f"- Teacher: `{s.teacher_arch}` (FPN {s.teacher_fpn} channels), "
        f"{_epochs(s.teacher_epochs)}, batch {s.batch_size}, AdamW lr "
        + ", ".join(f"{teacher_lr.get(track, s.lr):g} ({track} track)" for track in ctx.data_counts)
        + ", trained from scratch (no downloaded weights).",
        f"- Student: `{s.student_arch}` (FPN {s.student_fpn} channels), "
        f"{_epochs(s.student_epochs)}, batch {s.batch_size}, AdamW lr {s.lr:g}, cosine "
        "schedule; every variant of one seed has the same initialisation and batch order "
        "(core.engine reseeds per job).",
        f"- Seeds: main ablation {list(s.seeds)}, per-level ablation {list(s.ablation_seeds)}, "
        f"VOC track {list(s.voc_seeds)}.",
        "- Variants are `core.spec.ablation_distill` presets of the default `DistillSpec` "
        f"(all levels P2–P5, all three terms, lambda_KD {DEFAULT_LAMBDA_KD:g})"
        + (
            f" with the changes chosen on val for this scale: `{dict(s.distill)}` "
            "(docs/tuning*.md, `python -m bench.study --tune`)."
            if s.distill
            else "; the val tuning (docs/tuning*.md, `python -m bench.study --tune`) kept it."
        ),
        "- AP figures are COCO metrics (pycocotools) in percent; n/a where the test split has "
        "no object of that size (the benchmark has no large objects).",
        "",
    ]
    return lines


def main_table(records: Sequence[RunRecord], ctx: StudyContext) -> list[str]:
    """Mean ± std of every COCO metric per main variant, with the AP_small gap closed."""
    teacher = _teacher_scores(records, "coco")
    no_kd = metric_stat(_scores(_records(records, track="coco", variant="no_kd")), "AP_small")
    header = "| variant | seeds | " + " | ".join(METRICS) + " | AP_small gap closed |"
    lines = [
        "## Main ablation: no KD, response KD, PKD, single-level KD, hierarchical KD",
        "",
        _provenance(ctx),
        "",
        header,
        "|---" * (len(METRICS) + 3) + "|",
    ]
    if teacher:
        cells = [mean_std(metric_stat([teacher], m)) for m in METRICS]
        lines.append(f"| {_label(TEACHER)} | 1 | " + " | ".join(cells) + " | (100%) |")
    for variant in MAIN_VARIANTS:
        found = _records(records, track="coco", variant=variant)
        scores = _scores(found)
        cells = [mean_std(metric_stat(scores, m)) for m in METRICS]
        small = metric_stat(scores, "AP_small")
        share = gap_closed(small.mean, no_kd.mean, teacher.get("AP_small"))
        closed = "–" if share is None else f"{100 * share:.0f}%"
        lines.append(
            f"| {_label(variant)} | {len(found)} | " + " | ".join(cells) + f" | {closed} |"
        )
    lines += [
        "",
        "Gap closed = (AP_small(variant) − AP_small(no KD)) / (AP_small(teacher) − "
        "AP_small(no KD)), on the means; – where the teacher is not above the no-KD student.",
        "",
    ]
    return lines


def efficiency_table(records: Sequence[RunRecord], ctx: StudyContext) -> list[str]:
    """Parameters, GFLOPs and latency of the teacher and the student (batch 1)."""
    teacher = _records(records, track="coco", variant=TEACHER)
    student = _records(records, track="coco", variant="hierarchical") or [
        r for r in records if r.track == "coco" and r.variant != TEACHER and r.ok
    ]
    # A run that trained its model also timed its ONNX export; prefer it.
    student.sort(key=lambda r: "onnx_latency_ms" not in r.efficiency())
    rows = [("teacher", teacher[0].efficiency() if teacher else {})]
    rows.append(("student", student[0].efficiency() if student else {}))
    lines = [
        "## Cost: student vs teacher",
        "",
        f"_Scale `{ctx.scale.name}`, {ctx.scale.image_size} px, batch 1, measured during the study "
        f"on {_machine(ctx)} (a shared machine: "
        "latencies are noisy; `python -m bench.inference` measures them on their own)._",
        "",
        "| model | params (M) | GFLOPs | latency (ms) | ONNX Runtime latency (ms) | device |",
        "|---|---|---|---|---|---|",
    ]
    for name, eff in rows:
        if not eff:
            lines.append(f"| {name} | – | – | – | – | – |")
            continue
        onnx = eff.get("onnx_latency_ms")
        lines.append(
            f"| {name} | {eff['params'] / 1e6:.2f} | {eff['gflops']:.2f} | "
            f"{eff['latency_ms']:.1f} | {'–' if onnx is None else f'{onnx:.1f}'} | "
            f"{eff.get('device', '–')} |"
        )
    t, s = rows[0][1], rows[1][1]
    if t and s:
        lines += [
            "",
            f"Teacher / student: {t['params'] / s['params']:.1f}x parameters, "
            f"{t['gflops'] / s['gflops']:.1f}x GFLOPs, "
            f"{t['latency_ms'] / s['latency_ms']:.1f}x latency.",
        ]
    return [*lines, ""]


def ablation_table(records: Sequence[RunRecord], ctx: StudyContext) -> list[str]:
    """AP_small of full HKD with one level or one term dropped, against full HKD."""
    seeds = ctx.scale.ablation_seeds
    full = metric_stat(
        _scores(_records(records, track="coco", variant="hierarchical", seeds=seeds)), "AP_small"
    )
    lines = [
        "## Per-level and per-term ablation of hierarchical KD",
        "",
        _provenance(ctx) + f" Seeds {list(seeds)}.",
        "",
        "| configuration | seeds | AP | AP_small | Δ AP_small vs full HKD |",
        "|---|---|---|---|---|",
        f"| {_label('hierarchical')} | {full.n} | "
        + mean_std(
            metric_stat(
                _scores(_records(records, track="coco", variant="hierarchical", seeds=seeds)),
                "AP",
            )
        )
        + f" | {mean_std(full)} | 0 |",
    ]
    for variant in ctx.scale.ablation_variants:
        found = _records(records, track="coco", variant=variant, seeds=seeds)
        if not found and not any(r.variant == variant for r in records):
            continue
        scores = _scores(found)
        small = metric_stat(scores, "AP_small")
        delta = (
            "–"
            if small.mean is None or full.mean is None
            else f"{100 * (small.mean - full.mean):+.1f}"
        )
        lines.append(
            f"| {_label(variant)} | {len(found)} | {mean_std(metric_stat(scores, 'AP'))} | "
            f"{mean_std(small)} | {delta} |"
        )
    lines += [
        "",
        "A negative Δ means the dropped level or term helped small objects.",
        "",
    ]
    return lines


def voc_table(records: Sequence[RunRecord], ctx: StudyContext) -> list[str]:
    """The same images read through the Pascal VOC path: COCO track vs VOC track."""
    if not any(r.track == "voc" for r in records):
        return []
    seeds = ctx.scale.voc_seeds
    lines = [
        "## The same images in Pascal VOC format",
        "",
        _provenance(ctx) + f" Seeds {list(seeds)}.",
        "",
        "The same benchmark (every split) exported with `core.data.voc_export.write_voc` and "
        "read back by the VOC loader; VOC categories are sorted by name, so the VOC track "
        "trains its own teacher.",
        "",
        "| variant | AP (COCO) | AP (VOC) | AP_small (COCO) | AP_small (VOC) |",
        "|---|---|---|---|---|",
    ]
    for variant in (TEACHER, *ctx.scale.voc_variants):
        row = [_label(variant)]
        per_track = {}
        for track in ("coco", "voc"):
            track_seeds = None if variant == TEACHER else seeds
            per_track[track] = _scores(
                _records(records, track=track, variant=variant, seeds=track_seeds)
            )
        for metric in ("AP", "AP_small"):
            for track in ("coco", "voc"):
                row.append(mean_std(metric_stat(per_track[track], metric)))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def pictures_section(ctx: StudyContext, report_dir: Path) -> list[str]:
    """Links to the teacher / no-KD / HKD attention pictures."""
    if not ctx.pictures:
        return []
    lines = [
        "## Attention pictures",
        "",
        f"_Scale `{ctx.scale.name}`, seed {ctx.scale.seeds[0]}, the {ctx.split} images with the "
        "most small objects. Rows: teacher, no-KD student, HKD student; columns: the image with "
        "its ground-truth boxes, then the spatial attention (mean of |F|², `core.evaluation."
        "pictures`) at P2, P3, P4, P5._",
        "",
    ]
    for path in ctx.pictures:
        rel = os.path.relpath(path, report_dir)
        lines.append(f"![attention: teacher, no KD, HKD]({rel})")
    return [*lines, ""]


def runs_table(records: Sequence[RunRecord]) -> list[str]:
    """Every run: its time, its AP and AP_small (or its error)."""
    lines = [
        "## Every run",
        "",
        "| run | split | minutes | AP | AP_small | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        scores = r.scores()
        note = r.error or (f"scored the model trained by `{r.trained_by}`" if r.trained_by else "")
        lines.append(
            f"| `{r.key}` | {r.split} | {r.seconds / 60:.1f} | {_pct(scores.get('AP'))} | "
            f"{_pct(scores.get('AP_small'))} | {note} |"
        )
    return [*lines, ""]


def render_report(records: Sequence[RunRecord], ctx: StudyContext, report_path: Path) -> str:
    """The whole markdown report."""
    lines = [
        "# Results: hierarchical KD for small objects",
        "",
        f"Generated by `{ctx.command}` on {ctx.machine['date']}. Every number below is "
        "computed from the runs' metrics files; nothing is typed in by hand. Rerun the command "
        "to regenerate this page.",
        "",
    ]
    lines += verdict_section(records, ctx)
    lines += setup_section(ctx)
    lines += main_table(records, ctx)
    lines += efficiency_table(records, ctx)
    lines += ablation_table(records, ctx)
    lines += voc_table(records, ctx)
    lines += pictures_section(ctx, report_path.parent)
    lines += runs_table(records)
    return "\n".join(lines).rstrip() + "\n"

"""How the client writes numbers: AP in percent with one decimal, sizes, counts, durations."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

AP_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
HEADLINE_AP = ("AP", "AP_small")
NO_OBJECTS = "n/a"
"""What an AP reads where the evaluation had no object of that size (COCO's -1)."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def ap_percent(value: Any) -> str:
    """An AP fraction as percent with one decimal (0.046 -> `4.6 %`); `-` when absent and
    `n/a` when the evaluation had no object of that size (COCO's -1)."""
    number = _number(value)
    if number is None:
        return "-"
    if number < 0:
        return NO_OBJECTS
    return f"{100 * number:.1f} %"


def ap_label(name: str, value: Any) -> str:
    """One labelled AP figure: `AP_small 4.6 %` (`AP_large n/a (no object of this size)`)."""
    text = ap_percent(value)
    if text == NO_OBJECTS:
        text += " (no object of this size)"
    return f"{name} {text}"


def ap_figures(figures: Mapping[str, Any], names: tuple[str, ...] = HEADLINE_AP) -> str:
    """Labelled AP figures of one model, comma-separated: `AP 1.2 %, AP_small 0.4 %`."""
    return ", ".join(ap_label(name, figures.get(name)) for name in names)


def model_metrics(metrics: Mapping[str, Any] | None, model: str) -> dict[str, Any]:
    """The `student` or `teacher` section of a job's metrics ({} when it has none)."""
    section = (metrics or {}).get(model)
    return dict(section) if isinstance(section, Mapping) else {}


def evaluated_on(metrics: Mapping[str, Any] | None) -> str | None:
    """Which split and how many images a job's AP comes from: `val split, 40 images` (`,
    sliced` with data.tile). The count is metrics.json's `evaluation.images`, or in older
    metrics `dataset.val_images` (the same count), and left out where neither is there; None
    when the metrics say neither split nor count."""
    if not isinstance(metrics, Mapping):
        return None
    evaluation = metrics.get("evaluation")
    evaluation = evaluation if isinstance(evaluation, Mapping) else {}
    dataset = metrics.get("dataset")
    dataset = dataset if isinstance(dataset, Mapping) else {}
    split = evaluation.get("split")
    count = next(
        (
            value
            for value in (evaluation.get("images"), dataset.get("val_images"))
            if isinstance(value, int) and not isinstance(value, bool)
        ),
        None,
    )
    parts = [f"{split} split"] if isinstance(split, str) and split else []
    if count is not None:
        parts.append(f"{count} image" if count == 1 else f"{count} images")
    if not parts:
        return None
    if evaluation.get("mode") == "sliced":
        parts.append("sliced")
    return ", ".join(parts)


def job_ap(job: Mapping[str, Any], name: str) -> Any:
    """A job's headline AP figure: the student's, else the teacher's (a teacher job), else a
    list summary's flat figure; None when the job has none yet."""
    metrics = job.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        return None
    for model in ("student", "teacher"):
        section = model_metrics(metrics, model)
        if name in section:
            return section[name]
    return metrics.get(name)


def size_text(size: Any) -> str:
    """A byte count for people: `734 B`, `12.5 kB`, `3.2 MB`, `1.1 GB`."""
    number = _number(size)
    if number is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(number) < 1000 or unit == "GB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1000
    raise AssertionError("unreachable")


def count_text(value: Any) -> str:
    """A parameter count: `812`, `45.3 k`, `3.41 M`."""
    number = _number(value)
    if number is None:
        return "-"
    if abs(number) >= 1e6:
        return f"{number / 1e6:.2f} M"
    if abs(number) >= 1e3:
        return f"{number / 1e3:.1f} k"
    return f"{number:.0f}"


def duration_text(seconds: Any) -> str:
    """A duration: `42 s`, `3 min 05 s`, `2 h 07 min`."""
    number = _number(seconds)
    if number is None or number < 0:
        return "-"
    total = round(number)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"

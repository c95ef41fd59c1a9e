"""Putting jobs side by side: their headline metrics and where their specs differ."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.spec_summary import flatten

COCO_METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
EFFICIENCY_METRICS = ("params", "gflops", "latency_ms")
RATIO_METRICS = ("params", "gflops", "latency")

_MISSING = object()


def spec_diff(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every leaf path whose value differs between `specs`, with each spec's value.

    A path missing from a spec counts as None; paths keep the order they first appear in.
    """
    flat = [dict(flatten(spec)) for spec in specs]
    paths: dict[str, None] = {}
    for leaves in flat:
        paths.update(dict.fromkeys(leaves))
    diff = []
    for path in paths:
        values = [leaves.get(path, _MISSING) for leaves in flat]
        if any(v != values[0] for v in values[1:]):
            diff.append({"path": path, "values": [None if v is _MISSING else v for v in values]})
    return diff


def _number(value: Any) -> float | str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return str(value)


def headline_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float | str | None]:
    """The comparable figures of one job's metrics.json, by flat name.

    Names: `student/AP` ... `teacher/AP_large`, `efficiency/student/params` ...,
    `efficiency/ratios/gflops` ...
    """
    metrics = metrics or {}
    out: dict[str, float | str | None] = {}
    for model in ("student", "teacher"):
        coco = metrics.get(model) or {}
        for name in COCO_METRICS:
            out[f"{model}/{name}"] = _number(coco.get(name))
    efficiency = metrics.get("efficiency") or {}
    for model in ("student", "teacher"):
        figures = efficiency.get(model) or {}
        for name in EFFICIENCY_METRICS:
            out[f"efficiency/{model}/{name}"] = _number(figures.get(name))
    ratios = efficiency.get("ratios") or {}
    for name in RATIO_METRICS:
        out[f"efficiency/ratios/{name}"] = _number(ratios.get(name))
    return out


def side_by_side(
    per_job: Sequence[Mapping[str, float | str | None]],
) -> dict[str, list[float | str | None]]:
    """Metric name -> one value per job (in order); names no job has a value for are dropped."""
    names: dict[str, None] = {}
    for figures in per_job:
        names.update(dict.fromkeys(figures))
    table = {name: [figures.get(name) for figures in per_job] for name in names}
    return {name: values for name, values in table.items() if any(v is not None for v in values)}

"""The `compare` command: jobs side by side (`GET /compare`), headline metrics and spec diffs."""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cli.connection import UsageError, checked, common_options, connection_from, guarded
from cli.figures import AP_NAMES, ap_percent, count_text, evaluated_on
from cli.tables import format_table

NAME_WIDTH = 32
VALUE_WIDTH = 32
"""Spec values longer than this are cut (a list of level weights, say)."""
EFFICIENCY_LABELS = {
    "params": "params",
    "gflops": "GFLOPs",
    "latency_ms": "latency, PyTorch",
    "onnx_latency_ms": "latency, ONNX Runtime",
    "latency": "latency",
}
FASTEST = " *"
"""Marks the lowest latency whose p10-p90 range lies clear of every other job's."""
FASTEST_NOTE = "lowest latency: its p10-p90 range lies clear of every other job's."
DIFFERENT_EVALUATIONS = (
    "note: these jobs were evaluated on different splits or numbers of images: "
    "their AP figures are not directly comparable."
)
_LATENCY = re.compile(r"efficiency/(student|teacher)/(onnx_)?latency_ms")


@dataclass(frozen=True)
class Latency:
    """One job's latency figure: the median, its p10-p90 spread (None in older metrics),
    the timed repeats and the device."""

    median: float
    p10: float | None
    p90: float | None
    repeats: int | None
    device: str | None

    @property
    def has_spread(self) -> bool:
        """Whether p10 and p90 were measured."""
        return self.p10 is not None and self.p90 is not None

    def overlaps(self, other: Latency) -> bool:
        """Whether the two p10-p90 ranges overlap (or either lacks one): no ranking then."""
        if self.p10 is None or self.p90 is None or other.p10 is None or other.p90 is None:
            return True
        return self.p10 <= other.p90 and other.p10 <= self.p90

    def text(self) -> str:
        """`12.3 ms (p10-p90 11.9-13.0, 20 repeats, cpu (2 threads))`, or `12.3 ms (spread not
        measured, cpu (2 threads))` for a median stored alone."""
        if self.p10 is not None and self.p90 is not None:
            parts = [f"p10-p90 {_ms(self.p10)}-{_ms(self.p90)}"]
            if self.repeats is not None:
                parts.append(f"{self.repeats} repeats")
        else:
            parts = ["spread not measured"]
        if self.device:
            parts.append(self.device)
        return f"{_ms(self.median)} ms ({', '.join(parts)})"


def _ms(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def job_latency(job: Mapping[str, Any], name: str) -> Latency | None:
    """The latency behind the compared figure `name` (`efficiency/student/onnx_latency_ms`,
    say) from the job's metrics; None for another figure or a job without that section."""
    match = _LATENCY.fullmatch(name)
    metrics = job.get("metrics")
    if match is None or not isinstance(metrics, Mapping):
        return None
    efficiency = metrics.get("efficiency")
    section = efficiency.get(match[1]) if isinstance(efficiency, Mapping) else None
    if not isinstance(section, Mapping):
        return None
    prefix = match[2] or ""
    median = _finite(section.get(f"{prefix}latency_ms"))
    if median is None:
        return None
    repeats = section.get(f"{prefix}latency_repeats")
    device = section.get(f"{prefix}device") or ("cpu (onnxruntime)" if prefix else None)
    return Latency(
        median=median,
        p10=_finite(section.get(f"{prefix}latency_p10_ms")),
        p90=_finite(section.get(f"{prefix}latency_p90_ms")),
        repeats=repeats if isinstance(repeats, int) and not isinstance(repeats, bool) else None,
        device=str(device) if device else None,
    )


def fastest_index(values: Sequence[Any], latencies: Sequence[Latency | None]) -> int | None:
    """The job with the lowest compared latency `values[i]`, only where its p10-p90 range
    (`latencies[i]`) lies clear of every other job's with a value (the web's Compare rule: a
    figure without a spread overlaps everything); None otherwise."""
    measured = sorted(
        (median, i) for i, v in enumerate(values) if (median := _finite(v)) is not None
    )
    if len(measured) < 2 or measured[0][0] == measured[1][0]:
        return None
    index = measured[0][1]
    fastest = latencies[index] if index < len(latencies) else None
    if fastest is None or not fastest.has_spread:
        return None
    for _, other_index in measured[1:]:
        other = latencies[other_index] if other_index < len(latencies) else None
        if other is None or fastest.overlaps(other):
            return None
    return index


def metric_label(name: str) -> str:
    """`student/AP_small` -> `student AP_small`, `efficiency/ratios/gflops` ->
    `student/teacher GFLOPs`, `efficiency/teacher/onnx_latency_ms` -> `teacher latency, ONNX
    Runtime`."""
    parts = name.split("/")
    if parts[0] == "efficiency" and len(parts) == 3:
        model, figure = parts[1], parts[2]
        label = EFFICIENCY_LABELS.get(figure, figure)
        return f"{'student/teacher' if model == 'ratios' else model} {label}"
    return " ".join(parts)


def metric_value(name: str, value: Any) -> str:
    """A compared figure in its unit: AP in percent, counts, GFLOPs, ms, ratios."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    figure = name.rsplit("/", 1)[-1]
    if name.startswith("efficiency/ratios/"):
        return f"{float(value):.2f}x"
    if figure == "params":
        return count_text(value)
    if figure == "gflops":
        return f"{float(value):.2f}"
    if figure.endswith("latency_ms"):
        return f"{float(value):.1f} ms"
    if figure in AP_NAMES:
        return ap_percent(value)
    return f"{float(value):.4g}"


def spec_value(value: Any) -> str:
    """A spec leaf as compact JSON, cut to VALUE_WIDTH characters."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def compare_text(body: Mapping[str, Any]) -> str:
    """The compare answer as two tables: the jobs' metrics (with the split and image count
    each job's AP comes from), then the spec fields that differ."""
    jobs = [j for j in body.get("jobs") or [] if isinstance(j, Mapping)]
    header = ["", *[f"job {j.get('id')}" for j in jobs]]
    evaluated = [evaluated_on(j.get("metrics")) for j in jobs]
    rows = [
        ["name", *[str(j.get("name") or "")[:NAME_WIDTH] for j in jobs]],
        ["kind", *[str(j.get("kind") or "-") for j in jobs]],
        ["state", *[str(j.get("state") or "-") for j in jobs]],
        ["by", *[str(j.get("creator_email") or "-") for j in jobs]],
        ["evaluated on", *[text or "-" for text in evaluated]],
    ]
    metrics = body.get("metrics") or {}
    starred = False
    for name, values in metrics.items():
        cells = [metric_value(name, v) for v in values]
        if _LATENCY.fullmatch(name):
            # The spread and device are in each job's metrics; a star only beyond the noise.
            latencies = [
                job_latency(job, name) if value is not None else None
                for job, value in zip(jobs, values, strict=False)
            ]
            cells = [f.text() if f else cell for f, cell in zip(latencies, cells, strict=False)]
            # Teachers are mostly shared between compared jobs: nothing to rank (as the web).
            student = name.startswith("efficiency/student/")
            fastest = fastest_index(values, latencies) if student else None
            if fastest is not None:
                cells[fastest] += FASTEST
                starred = True
        rows.append([metric_label(name), *cells, *["-"] * (len(jobs) - len(cells))][: len(header)])
    text = format_table(rows, header)
    if starred:
        text += f"\n{FASTEST.strip()} {FASTEST_NOTE}"
    if len({e for e in evaluated if e}) > 1:
        text += f"\n{DIFFERENT_EVALUATIONS}"
    diff = [d for d in body.get("spec_diff") or [] if isinstance(d, Mapping)]
    if not diff:
        return text + "\n\nThe specs are the same."
    spec_rows = [
        [str(d.get("path")), *[spec_value(v) for v in d.get("values") or []]] for d in diff
    ]
    spec_rows = [(row + ["-"] * len(header))[: len(header)] for row in spec_rows]
    spec_table = format_table(spec_rows, ["SPEC FIELD", *header[1:]])
    return f"{text}\n\nSpec fields that differ ({len(diff)}):\n{spec_table}"


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare jobs: their headline metrics and where their specs differ."""
    ids = list(dict.fromkeys(args.jobs))
    if len(ids) < 2:
        raise UsageError("compare needs at least two different job ids")
    with connection_from(args).client() as http:
        body = checked(http.get("/compare", params={"jobs": ",".join(map(str, ids))})).json()
    print(compare_text(body))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `compare` on the top-level parser."""
    compare = sub.add_parser(
        "compare",
        parents=[common_options()],
        help="jobs side by side: headline metrics and the spec fields that differ",
    )
    compare.add_argument("jobs", type=int, nargs="+", metavar="JOB", help="two or more job ids")
    compare.set_defaults(handler=guarded(cmd_compare))

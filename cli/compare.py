"""The `compare` command: jobs side by side (`GET /compare`), headline metrics and spec diffs."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from cli.connection import UsageError, checked, common_options, connection_from, guarded
from cli.figures import AP_NAMES, ap_percent, count_text
from cli.tables import format_table

NAME_WIDTH = 32
VALUE_WIDTH = 32
"""Spec values longer than this are cut (a list of level weights, say)."""
EFFICIENCY_LABELS = {
    "params": "params",
    "gflops": "GFLOPs",
    "latency_ms": "latency",
    "latency": "latency",
}


def metric_label(name: str) -> str:
    """`student/AP_small` -> `student AP_small`, `efficiency/ratios/gflops` ->
    `student/teacher GFLOPs`, `efficiency/teacher/latency_ms` -> `teacher latency`."""
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
    if figure == "latency_ms":
        return f"{float(value):.1f} ms"
    if figure in AP_NAMES:
        return ap_percent(value)
    return f"{float(value):.4g}"


def spec_value(value: Any) -> str:
    """A spec leaf as compact JSON, cut to VALUE_WIDTH characters."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def compare_text(body: Mapping[str, Any]) -> str:
    """The compare answer as two tables: the jobs' metrics, then the spec fields that differ."""
    jobs = [j for j in body.get("jobs") or [] if isinstance(j, Mapping)]
    header = ["", *[f"job {j.get('id')}" for j in jobs]]
    rows = [
        ["name", *[str(j.get("name") or "")[:NAME_WIDTH] for j in jobs]],
        ["kind", *[str(j.get("kind") or "-") for j in jobs]],
        ["state", *[str(j.get("state") or "-") for j in jobs]],
        ["by", *[str(j.get("creator_email") or "-") for j in jobs]],
    ]
    metrics = body.get("metrics") or {}
    for name, values in metrics.items():
        cells = [metric_value(name, v) for v in values]
        rows.append([metric_label(name), *cells, *["-"] * (len(jobs) - len(cells))][: len(header)])
    text = format_table(rows, header)
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

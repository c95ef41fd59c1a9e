"""Commands of the `datasets` and `teachers` groups: upload a file, list, wait for validation."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_args

import httpx

from cli.connection import (
    ClientError,
    checked,
    common_options,
    connection_from,
    guarded,
    page_items,
)
from cli.figures import ap_percent, model_metrics, size_text
from cli.tables import format_table
from core.spec import DataSpec, TeacherArch, TeacherSpec

DATASET_FORMATS: tuple[str, ...] = get_args(DataSpec.model_fields["format"].annotation)
TEACHER_ARCHS: tuple[str, ...] = get_args(TeacherArch)
FPN_DEFAULT: int = TeacherSpec.model_fields["fpn_channels"].default
UPLOAD_STATES = ("validating", "ready", "invalid")
POLL_SECONDS = 2.0
WAIT_TIMEOUT = 900.0
UPLOAD_TIMEOUT = httpx.Timeout(30.0, connect=10.0, write=None)
KEYS_SHOWN = 5
"""Missing / unexpected checkpoint keys printed per list (the rest counted)."""


# --- talking to the server ------------------------------------------------------------------


def upload_file(
    http: httpx.Client, resource: str, path: Path, fields: Mapping[str, str]
) -> dict[str, Any]:
    """POST `path` as the multipart `file` of `/datasets` or `/teachers`; the 202 body."""
    if not path.is_file():
        raise ClientError(f"{path}: no such file")
    with path.open("rb") as fh:
        response = http.post(
            f"/{resource}",
            files={"file": (path.name, fh)},
            data=dict(fields),
            timeout=UPLOAD_TIMEOUT,
        )
    body: dict[str, Any] = checked(response).json()
    return body


def wait_validated(
    http: httpx.Client,
    resource: str,
    row_id: int,
    *,
    poll: float = POLL_SECONDS,
    timeout: float = WAIT_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll `/<resource>/<id>` until its status is no longer `validating`."""
    waited = 0.0
    while True:
        row: dict[str, Any] = checked(http.get(f"/{resource}/{row_id}")).json()
        if row.get("status") != "validating":
            return row
        if waited >= timeout:
            raise ClientError(
                f"{resource[:-1]} {row_id} is still validating after {timeout:.0f} s "
                "(is a worker running?)"
            )
        sleep(poll)
        waited += poll


# --- what is printed ------------------------------------------------------------------------


def _keys(label: str, keys: Any) -> str | None:
    if not isinstance(keys, list) or not keys:
        return None
    shown = ", ".join(str(k) for k in keys[:KEYS_SHOWN])
    more = f" and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
    return f"    {label} ({len(keys)}): {shown}{more}"


def issue_lines(issue: Any) -> list[str]:
    """An upload's validation issue as text: `file, image 3: message` (+ checkpoint keys)."""
    if not isinstance(issue, Mapping):
        return [f"  - {issue}"]
    where = [str(issue.get("file") or "upload")]
    if issue.get("image_id") is not None:
        where.append(f"image {issue['image_id']}")
    if issue.get("annotation_id") is not None:
        where.append(f"annotation {issue['annotation_id']}")
    lines = [f"  - {', '.join(where)}: {issue.get('message', '')}"]
    for label in ("missing", "unexpected", "mismatched"):
        line = _keys(f"{label} keys", issue.get(label))
        if line:
            lines.append(line)
    return lines


def dataset_facts(row: Mapping[str, Any]) -> str:
    """What a ready dataset holds: images per split, boxes, categories, size buckets."""
    stats = row.get("statistics") or {}
    splits = stats.get("splits") or {}
    per_split = ", ".join(
        f"{name} {split.get('images', 0)}"
        for name, split in splits.items()
        if isinstance(split, Mapping)
    )
    images = f"{stats.get('images', '?')} images" + (f" ({per_split})" if per_split else "")
    buckets = stats.get("size_buckets") or {}
    sizes = ", ".join(f"{name} {count}" for name, count in buckets.items())
    parts = [images, f"{stats.get('annotations', '?')} boxes" + (f" ({sizes})" if sizes else "")]
    parts.append(f"{stats.get('categories', '?')} categories")
    return ", ".join(parts)


def _warnings(row: Mapping[str, Any]) -> list[str]:
    warnings = (row.get("statistics") or {}).get("warnings") or []
    out = []
    for warning in warnings if isinstance(warnings, list) else [warnings]:
        text = warning.get("message", warning) if isinstance(warning, Mapping) else warning
        out.append(f"  warning: {text}")
    return out


def teacher_categories(row: Mapping[str, Any]) -> str:
    """A teacher's object categories (num_classes counts the background too)."""
    classes = row.get("num_classes")
    return str(classes - 1) if isinstance(classes, int) and classes > 0 else "-"


def teacher_ap(row: Mapping[str, Any], name: str = "AP") -> Any:
    """A teacher's AP as its training job or its file's provenance recorded it (or None)."""
    info = row.get("info") or {}
    if not isinstance(info, Mapping):
        return None
    trained = model_metrics(info.get("metrics"), "teacher")
    if name in trained:
        return trained[name]
    provenance = info.get("provenance") or {}
    figures = provenance.get("metrics") if isinstance(provenance, Mapping) else None
    return figures.get(name) if isinstance(figures, Mapping) else None


def teacher_facts(row: Mapping[str, Any]) -> str:
    """What a ready teacher is: architecture, categories, FPN width and recorded AP."""
    parts = [str(row.get("arch")), f"{teacher_categories(row)} categories"]
    parts.append(f"fpn_channels {row.get('fpn_channels')}")
    if row.get("source_job_id"):
        parts.append(f"trained by job {row['source_job_id']}")
    ap = teacher_ap(row, "AP")
    if ap is not None:
        parts.append(f"AP {ap_percent(ap)}, AP_small {ap_percent(teacher_ap(row, 'AP_small'))}")
    return ", ".join(parts)


def outcome(kind: str, row: Mapping[str, Any]) -> tuple[int, list[str]]:
    """The exit status and the lines that report a validated upload."""
    status = row.get("status")
    head = f"{kind} {row.get('id')} {row.get('name')!r} {status}"
    if status == "ready":
        facts = dataset_facts(row) if kind == "dataset" else teacher_facts(row)
        return 0, [f"{head}: {facts}", *_warnings(row)]
    lines = [f"{head}:"]
    for issue in row.get("errors") or ["no reason was recorded"]:
        lines.extend(issue_lines(issue))
    return 1, lines


def _created(row: Mapping[str, Any]) -> str:
    return str(row.get("created_at") or "")[:16].replace("T", " ")


def dataset_rows(rows: list[dict[str, Any]]) -> str:
    """The dataset list as a table."""
    header = ["ID", "NAME", "FORMAT", "STATUS", "IMAGES", "BOXES", "CLASSES", "SIZE", "CREATED"]
    table = []
    for row in rows:
        stats = row.get("statistics") or {}
        table.append(
            [
                str(row.get("id")),
                str(row.get("name") or "")[:40],
                str(stats.get("format") or row.get("format") or "-"),
                str(row.get("status")),
                str(stats.get("images", "-")),
                str(stats.get("annotations", "-")),
                str(stats.get("categories", "-")),
                size_text(row.get("size_bytes")),
                _created(row),
            ]
        )
    return format_table(table, header)


def teacher_rows(rows: list[dict[str, Any]]) -> str:
    """The teacher list as a table (CLASSES: object categories, without the background)."""
    header = [
        "ID",
        "NAME",
        "ARCH",
        "CLASSES",
        "FPN",
        "STATUS",
        "SOURCE",
        "AP",
        "AP_SMALL",
        "CREATED",
    ]
    table = [
        [
            str(row.get("id")),
            str(row.get("name") or "")[:40],
            str(row.get("arch")),
            teacher_categories(row),
            str(row.get("fpn_channels")),
            str(row.get("status")),
            f"job {row['source_job_id']}" if row.get("source_job_id") else "upload",
            ap_percent(teacher_ap(row, "AP")),
            ap_percent(teacher_ap(row, "AP_small")),
            _created(row),
        ]
        for row in rows
    ]
    return format_table(table, header)


# --- commands -------------------------------------------------------------------------------


def _report_upload(
    http: httpx.Client, kind: str, row: dict[str, Any], args: argparse.Namespace
) -> int:
    print(
        f"{kind} {row['id']} {row.get('name')!r} uploaded ({size_text(row.get('size_bytes'))}): "
        f"{row.get('status')}"
    )
    if not args.wait:
        if row.get("status") == "validating":
            print(f"  `distillery {kind}s list` shows when it is ready (or use --wait)")
        return 0
    status, lines = outcome(
        kind, wait_validated(http, f"{kind}s", int(row["id"]), timeout=args.timeout)
    )
    print("\n".join(lines))
    return status


def cmd_dataset_upload(args: argparse.Namespace) -> int:
    """Upload a dataset archive (zip or tar of COCO or VOC); with --wait, its validation."""
    fields = {"format": args.format}
    if args.name:
        fields["name"] = args.name
    with connection_from(args).client() as http:
        row = upload_file(http, "datasets", args.path, fields)
        return _report_upload(http, "dataset", row, args)


def cmd_teacher_upload(args: argparse.Namespace) -> int:
    """Upload a teacher checkpoint with its architecture; with --wait, its check."""
    fields = {"arch": args.arch, "fpn_channels": str(args.fpn_channels)}
    if args.name:
        fields["name"] = args.name
    with connection_from(args).client() as http:
        row = upload_file(http, "teachers", args.file, fields)
        return _report_upload(http, "teacher", row, args)


def _list(args: argparse.Namespace, resource: str, render: Callable[[list[Any]], str]) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    with connection_from(args).client() as http:
        body = checked(http.get(f"/{resource}", params=params)).json()
    rows = page_items(body)
    print(render(rows))
    count = body.get("count") if isinstance(body, dict) else None
    if isinstance(count, int) and count > len(rows):
        print(f"({len(rows)} of {count}; --limit for more)")
    return 0


def cmd_dataset_list(args: argparse.Namespace) -> int:
    """List the team's datasets with their validation state."""
    return _list(args, "datasets", dataset_rows)


def cmd_teacher_list(args: argparse.Namespace) -> int:
    """List the team's teachers with their validation state."""
    return _list(args, "teachers", teacher_rows)


# --- registration ---------------------------------------------------------------------------


def _group(sub: argparse._SubParsersAction, name: str, help_text: str) -> Any:  # type: ignore[type-arg]
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="wait for the validation; print the issues and exit 1 if it is invalid",
    )
    parser.add_argument(
        "--timeout", type=float, default=WAIT_TIMEOUT, help="seconds --wait waits at most"
    )


def _list_options(parser: argparse.ArgumentParser, states: tuple[str, ...]) -> None:
    parser.add_argument("--status", choices=states)
    parser.add_argument("--limit", type=int, default=50)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the `datasets` and `teachers` groups on the top-level parser."""
    common = common_options()
    datasets = _group(sub, "datasets", "upload and list a server's datasets")
    upload = datasets.add_parser(
        "upload", parents=[common], help="upload a dataset archive (zip/tar, COCO or VOC)"
    )
    upload.add_argument("path", type=Path, help="the archive")
    upload.add_argument("--name", help="dataset name (default: the file name)")
    upload.add_argument("--format", choices=DATASET_FORMATS, default="auto")
    _wait_options(upload)
    upload.set_defaults(handler=guarded(cmd_dataset_upload))
    listing = datasets.add_parser("list", parents=[common], help="list datasets")
    _list_options(listing, UPLOAD_STATES)
    listing.set_defaults(handler=guarded(cmd_dataset_list))

    teachers = _group(sub, "teachers", "upload and list a server's teachers")
    upload = teachers.add_parser(
        "upload", parents=[common], help="upload a teacher checkpoint (.safetensors, .pt, .pth)"
    )
    upload.add_argument("file", type=Path, help="the checkpoint")
    upload.add_argument(
        "--arch",
        required=True,
        choices=TEACHER_ARCHS,
        metavar="ARCH",
        help="its architecture: " + ", ".join(TEACHER_ARCHS),
    )
    upload.add_argument("--name", help="teacher name (default: the file name)")
    upload.add_argument(
        "--fpn-channels", type=int, default=FPN_DEFAULT, help=f"FPN width (default {FPN_DEFAULT})"
    )
    _wait_options(upload)
    upload.set_defaults(handler=guarded(cmd_teacher_upload))
    listing = teachers.add_parser("list", parents=[common], help="list teachers")
    _list_options(listing, UPLOAD_STATES)
    listing.set_defaults(handler=guarded(cmd_teacher_list))

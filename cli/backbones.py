"""Commands of the `backbones` group: upload ImageNet backbone weights, list them."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from cli.connection import checked, common_options, connection_from, guarded, page_items
from cli.figures import size_text
from cli.tables import format_table
from cli.uploads import UPLOAD_STATES, WAIT_TIMEOUT, issue_lines, upload_file, wait_validated
from core.spec import BackboneArch

BACKBONE_ARCHS: tuple[str, ...] = get_args(BackboneArch)


def backbone_outcome(row: Mapping[str, Any]) -> tuple[int, list[str]]:
    """The exit status and the lines that report checked backbone weights."""
    status = row.get("status")
    head = f"backbone {row.get('id')} {row.get('name')!r} {status}"
    if status == "ready":
        info = row.get("info") or {}
        facts = f"{row.get('arch')}, {info.get('loaded', '?')} tensors loaded"
        if info.get("ignored"):
            facts += f" ({info['ignored']} of the classifier ignored)"
        return 0, [f"{head}: {facts}"]
    lines = [f"{head}:"]
    for issue in row.get("errors") or ["no reason was recorded"]:
        lines.extend(issue_lines(issue))
    return 1, lines


def backbone_rows(rows: list[dict[str, Any]]) -> str:
    """The backbone list as a table, with who uploaded each."""
    header = ["ID", "NAME", "ARCH", "STATUS", "SIZE", "UPLOADED BY", "CREATED"]
    table = [
        [
            str(row.get("id")),
            str(row.get("name") or "")[:40],
            str(row.get("arch")),
            str(row.get("status")),
            size_text(row.get("size_bytes")),
            str(row.get("creator_email") or "-"),
            str(row.get("created_at") or "")[:16].replace("T", " "),
        ]
        for row in rows
    ]
    return format_table(table, header)


def cmd_backbone_upload(args: argparse.Namespace) -> int:
    """Upload backbone weights with their trunk; with --wait, their check."""
    fields = {"arch": args.arch}
    if args.name:
        fields["name"] = args.name
    with connection_from(args).client() as http:
        row = upload_file(http, "backbones", args.file, fields)
        print(
            f"backbone {row['id']} {row.get('name')!r} uploaded "
            f"({size_text(row.get('size_bytes'))}): {row.get('status')}"
        )
        if not args.wait:
            print(
                f"  `distillery backbones list` shows when it is ready (or use --wait); "
                f"submit --student-backbone {row['id']} picks it"
            )
            return 0
        status, lines = backbone_outcome(
            wait_validated(http, "backbones", int(row["id"]), timeout=args.timeout)
        )
    print("\n".join(lines))
    return status


def cmd_backbone_list(args: argparse.Namespace) -> int:
    """List the team's backbone weights with their validation state and uploader."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.arch:
        params["arch"] = args.arch
    with connection_from(args).client() as http:
        body = checked(http.get("/backbones", params=params)).json()
    rows = page_items(body)
    print(backbone_rows(rows))
    count = body.get("count") if isinstance(body, dict) else None
    if isinstance(count, int) and count > len(rows):
        print(f"({len(rows)} of {count}; --limit for more)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the `backbones` group on the top-level parser."""
    common = common_options()
    help_text = "upload and list a server's backbone weights (ImageNet trunks)"
    group = sub.add_parser("backbones", help=help_text, description=help_text)
    group.set_defaults(handler=lambda _args: group.print_help() or 2)
    commands = group.add_subparsers(dest="backbones_command", metavar="COMMAND")
    upload = commands.add_parser(
        "upload",
        parents=[common],
        help="upload backbone weights (torchvision ImageNet .pth, .pt or .safetensors)",
    )
    upload.add_argument("file", type=Path, help="the weights file")
    upload.add_argument(
        "--arch",
        required=True,
        choices=BACKBONE_ARCHS,
        metavar="ARCH",
        help="the trunk: " + ", ".join(BACKBONE_ARCHS),
    )
    upload.add_argument("--name", help="backbone name (default: the file name)")
    upload.add_argument(
        "--wait",
        action="store_true",
        help="wait for the check; print the issues and exit 1 if it is invalid",
    )
    upload.add_argument(
        "--timeout", type=float, default=WAIT_TIMEOUT, help="seconds --wait waits at most"
    )
    upload.set_defaults(handler=guarded(cmd_backbone_upload))
    listing = commands.add_parser("list", parents=[common], help="list backbone weights")
    listing.add_argument("--status", choices=UPLOAD_STATES)
    listing.add_argument("--arch", choices=BACKBONE_ARCHS, metavar="ARCH")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=guarded(cmd_backbone_list))

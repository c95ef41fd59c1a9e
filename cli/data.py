"""Commands of the `data` group: check a dataset, generate the synthetic benchmark, convert."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this group's commands on the top-level parser."""
    group = sub.add_parser("data", help="dataset tools: check, synth, to-voc")
    commands = group.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    check = commands.add_parser(
        "check", help="validate a COCO/VOC dataset (folder or archive), print errors or statistics"
    )
    check.add_argument("path", type=Path, help="dataset folder, .zip or .tar(.gz)")
    check.add_argument("--format", choices=("auto", "coco", "voc"), default="auto")
    check.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="training size the warnings assume (default: the spec's data.image_size default)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=_check)

    synth = commands.add_parser(
        "synth", help="generate the offline synthetic small-object benchmark (COCO layout)"
    )
    synth.add_argument("out", type=Path, help="output folder")
    synth.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    synth.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--val-fraction", type=float, default=0.2)
    synth.set_defaults(handler=_synth)

    to_voc = commands.add_parser("to-voc", help="convert a COCO-layout dataset to Pascal VOC")
    to_voc.add_argument("src", type=Path, help="COCO dataset folder or archive")
    to_voc.add_argument("out", type=Path, help="output folder")
    to_voc.set_defaults(handler=_to_voc)


def _print_statistics(stats: dict[str, Any]) -> None:
    from core.data.stats import text_histogram

    print(
        f"{stats.get('format', '?')} dataset: {stats['images']} images, "
        f"{stats['annotations']} boxes, {stats['categories']} classes"
    )
    for name, split in stats.get("splits", {}).items():
        print(f"  split {name}: {split['images']} images, {split['annotations']} boxes")
    print("boxes per class:")
    width = max((len(n) for n in stats["boxes_per_class"]), default=0)
    for name, count in stats["boxes_per_class"].items():
        print(f"  {name:<{width}} {count:>7d}")
    buckets = stats["size_buckets"]
    total = max(stats["annotations"], 1)
    print(
        f"sizes (COCO, sqrt(area) < {stats['small_threshold']} small, "
        f"< {stats['medium_threshold']} medium):"
    )
    for bucket in ("small", "medium", "large"):
        print(f"  {bucket:<6} {buckets[bucket]:>7d}  {100 * buckets[bucket] / total:5.1f} %")
    print("object size histogram (sqrt(area)):")
    for line in text_histogram(stats["size_histogram"]):
        print(f"  {line}")


def _check(args: argparse.Namespace) -> int:
    from core.data.validate import validate_dataset

    if args.image_size is not None and not 32 <= args.image_size <= 2048:
        print("error: --image-size must be 32..2048 (data.image_size's range)", file=sys.stderr)
        return 2
    sizes = {} if args.image_size is None else {"image_size": args.image_size}
    report = validate_dataset(args.path, format=args.format, **sizes)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    if not report.ok:
        print(f"{args.path}: {len(report.errors)} problem(s)", file=sys.stderr)
        for issue in report.errors:
            print(f"  {issue}", file=sys.stderr)
        return 1
    assert report.statistics is not None
    _print_statistics(report.statistics)
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from core.data.synthetic import generate_synthetic

    try:
        out = generate_synthetic(
            args.out,
            images=args.images,
            size=args.size,
            seed=args.seed,
            val_fraction=args.val_fraction,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.images} images of {args.size} px to {out}")
    return 0


def _to_voc(args: argparse.Namespace) -> int:
    from core.data.voc_export import write_voc

    try:
        out = write_voc(args.src, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote Pascal VOC layout to {out}")
    return 0

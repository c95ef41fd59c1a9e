"""Commands that run the engine locally: `run`, `ablate` and `demo`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cli.figures import evaluated_on
from core.spec import ABLATION_PRESETS, JobSpec

EXIT_SPEC_ERROR = 2
EXIT_RUN_ERROR = 1
EXIT_CANCELED = 130
EXIT_ORDER_NOT_HELD = 3
"""`demo --check-order`: some seed did not order AP_small teacher > HKD > no KD."""


class SpecFileError(ValueError):
    """A spec file that cannot be read or parsed, or a bad `--set` override."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register this group's commands on the top-level parser."""
    run = sub.add_parser("run", help="run a job spec (teacher, distill or evaluate) locally")
    run.add_argument("spec", type=Path, help="job spec (YAML or JSON)")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--resume", type=Path, default=None, help="checkpoint to resume from")
    _add_common(run)
    run.set_defaults(handler=_run)

    ablate = sub.add_parser("ablate", help="run a distill spec as the paper's ablation variants")
    ablate.add_argument("spec", type=Path, help="distill job spec (YAML or JSON)")
    ablate.add_argument("--out", type=Path, required=True, help="output folder")
    ablate.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    ablate.add_argument(
        "--variants",
        nargs="+",
        choices=ABLATION_PRESETS,
        default=list(ABLATION_PRESETS),
        help="variants (default: all)",
    )
    _add_common(ablate)
    ablate.set_defaults(handler=_ablate)

    demo = sub.add_parser(
        "demo", help="synthetic benchmark, a teacher, then no-KD vs HKD students: the table"
    )
    demo.add_argument("--preset", choices=("quick", "full"), default="quick")
    demo.add_argument("--out", type=Path, default=None, help="output folder (default runs/demo-*)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="student seeds (default: the preset's)"
    )
    demo.add_argument(
        "--check-order",
        action="store_true",
        help=f"exit {EXIT_ORDER_NOT_HELD} unless every seed orders AP_small teacher > HKD > no KD "
        "(`make demo-check`: the quick preset on seeds 0, 1 and 2)",
    )
    # Measured on a shared 2-core machine: two torch threads under load spin against other
    # processes and ran the quick demo several times slower than one thread did.
    _add_threads(demo, default=1)
    demo.set_defaults(handler=_demo)


def _add_threads(parser: argparse.ArgumentParser, *, default: int | None = None) -> None:
    chosen = "torch's choice" if default is None else str(default)
    parser.add_argument(
        "--threads",
        type=int,
        default=default,
        help=f"torch CPU threads (default: {chosen}; 1 helps on a busy shared machine)",
    )


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a spec field, e.g. --set schedule.epochs=3 (value parsed as YAML)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_threads(parser)


# --------------------------------------------------------------------------- spec loading
def apply_override(data: dict[str, Any], override: str) -> None:
    """Set `key.path=value` inside a nested mapping (the value is parsed as YAML)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise SpecFileError(f"--set {override!r}: expected KEY.PATH=VALUE")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise SpecFileError(f"--set {override!r}: '{part}' is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None


def load_spec(path: Path, overrides: Sequence[str] = ()) -> JobSpec:
    """A JobSpec from a YAML/JSON file plus overrides; ValidationError or SpecFileError."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecFileError(f"{path}: cannot read the spec ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise SpecFileError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise SpecFileError(f"{path}: a spec is a mapping of sections (kind, data, ...)")
    for override in overrides:
        apply_override(data, override)
    return JobSpec.model_validate(data)


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per pydantic error: the field path, then the message."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(spec)"
        lines.append(f"  {where}: {item['msg']}")
    return lines


def _spec_or_exit(path: Path, overrides: Sequence[str]) -> JobSpec | int:
    try:
        return load_spec(path, overrides)
    except SpecFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except ValidationError as exc:
        print(f"error: {path} is not a valid job spec:", file=sys.stderr)
        for line in format_validation_error(exc):
            print(line, file=sys.stderr)
    return EXIT_SPEC_ERROR


def _prepare(args: argparse.Namespace) -> None:
    """Log the engine's phases to stderr and apply --threads."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(args.threads, 1))


# --------------------------------------------------------------------------- commands
def _guarded(action: Any) -> int:
    """Run `action()`, turning user errors and cancellation into exit statuses."""
    from core.engine.hooks import TrainingCanceled

    try:
        action()
    except TrainingCanceled as exc:
        print(f"canceled: {exc}", file=sys.stderr)
        return EXIT_CANCELED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_CANCELED
    except ValueError as exc:  # dataset, checkpoint and spec errors users can fix
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUN_ERROR
    return 0


def _run(args: argparse.Namespace) -> int:
    spec = _spec_or_exit(args.spec, args.overrides)
    if isinstance(spec, int):
        return spec
    _prepare(args)
    from core.pipeline.run import run_job

    def action() -> None:
        result = run_job(spec, args.out, resume=args.resume, progress=not args.quiet)
        print(_summary(result.metrics))
        for artifact in result.artifacts:
            print(f"  {artifact.kind:<20} {artifact.path}")

    return _guarded(action)


def _ablate(args: argparse.Namespace) -> int:
    spec = _spec_or_exit(args.spec, args.overrides)
    if isinstance(spec, int):
        return spec
    _prepare(args)
    from core.pipeline.ablation import format_ablation_table, run_ablation

    def action() -> None:
        result = run_ablation(
            spec, args.out, seeds=args.seeds, variants=args.variants, progress=not args.quiet
        )
        print(format_ablation_table(result))
        print(f"written: {Path(args.out) / 'ablation.json'}")

    return _guarded(action)


def _demo(args: argparse.Namespace) -> int:
    _prepare(args)
    from core.pipeline.demo import DEMO_PRESETS, run_demo

    preset = DEMO_PRESETS[args.preset]()
    if args.seeds:
        preset = dataclasses.replace(preset, seeds=tuple(args.seeds))
    out = args.out or Path("runs") / f"demo-{preset.name}"
    held: list[bool | None] = []

    def action() -> None:
        result = run_demo(preset, out, progress=not args.quiet)
        held.append(result["ordering"]["holds"])
        print()
        print(
            f"Demo '{preset.name}' ({result['seconds']:.0f} s), AP in % on the synthetic val split:"
        )
        print(result["table"])
        ordering = result["ordering"]
        if ordering["lines"]:
            print(f"AP_small, teacher > HKD > no KD per seed (scale: the {preset.name} preset):")
            print("\n".join(f"  {line}" for line in ordering["lines"]))
        print(f"written: {out / 'demo.json'}")

    status = _guarded(action)
    if status == 0 and args.check_order and held != [True]:
        message = "error: AP_small is not ordered teacher > HKD > no KD for every seed"
        print(message, file=sys.stderr)
        return EXIT_ORDER_NOT_HELD
    return status


def _summary(metrics: dict[str, Any]) -> str:
    """A short text summary of a metrics.json document: AP of each model (%), then which
    split and how many images they come from."""
    lines = [f"{metrics['kind']} job done (spec {metrics['spec_hash']})"]
    for role in ("teacher", "student"):
        values = metrics.get(role)
        if values:
            # the AP figures only (per_class and pr_curve are mappings)
            shown = {k: round(100 * v, 1) for k, v in values.items() if isinstance(v, int | float)}
            lines.append(f"  {role}: {json.dumps(shown)}")
    evaluated = evaluated_on(metrics)
    if evaluated:
        lines.append(f"  evaluated on: {evaluated}")
    return "\n".join(lines)

"""Sweep commands: `sweep SPEC --space SPACE.yaml`, `sweeps`, and `sweep show|pause|resume|
cancel|final-run ID`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cli.connection import (
    UsageError,
    checked,
    common_options,
    connection_from,
    guarded,
    page_items,
)
from cli.jobs import apply_ids, load_spec_file
from cli.tables import format_table
from core.sweep_spec import SweepSpec

ACTIONS = ("show", "pause", "resume", "cancel", "final-run")


def load_space(path: Path) -> dict[str, Any]:
    """A sweep's settings from YAML: a mapping of spec paths, or one with a `space` key."""
    data = load_spec_file(path)
    return data if "space" in data else {"space": data}


def sweep_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /sweeps body from the files and flags (checked here, then by the server)."""
    spec = apply_ids(load_spec_file(args.target[0]), dataset=args.dataset, teacher=args.teacher)
    config = load_space(args.space)
    for flag in ("trials", "parallel", "method", "hours", "objective", "pruner"):
        value = getattr(args, flag)
        if value is not None:
            config[flag] = {"kind": value} if flag == "pruner" else value
    try:
        SweepSpec.model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        raise UsageError(f"{args.space}: {where}: {error.get('msg', 'invalid')}") from None
    body: dict[str, Any] = {"spec": spec, **config}
    if args.name:
        body["name"] = args.name
    return body


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


def sweep_rows(sweeps: list[dict[str, Any]]) -> str:
    """Sweeps as a table."""
    rows = [
        [
            str(s["id"]),
            s["name"][:40],
            s["state"],
            s["config"].get("method", ""),
            f"{s['counts'].get('total', 0)}/{s['config'].get('trials', '')}",
            s["config"].get("objective", ""),
            _value(s.get("best_value")),
        ]
        for s in sweeps
    ]
    return format_table(rows, ["ID", "NAME", "STATE", "METHOD", "TRIALS", "OBJECTIVE", "BEST"])


def trial_rows(sweep: dict[str, Any]) -> str:
    """A sweep's trials as a table."""
    rows = [
        [
            str(t["number"]),
            str(t["job_id"]),
            t["trial_state"] if t["trial_state"] not in (None, "running") else t["state"],
            _value(t.get("value")),
            ", ".join(f"{k}={_value(v)}" for k, v in t["params"].items()),
        ]
        for t in sweep.get("trials") or []
    ]
    return format_table(rows, ["#", "JOB", "STATE", "VALUE", "PARAMS"])


def _sweep_id(args: argparse.Namespace) -> int:
    if len(args.target) != 2 or not args.target[1].isdigit():
        raise UsageError(f"usage: distillery sweep {args.target[0]} SWEEP_ID")
    return int(args.target[1])


def cmd_sweep(args: argparse.Namespace) -> int:
    """Start a sweep, or show / pause / resume / cancel one, or queue its final run."""
    action = args.target[0]
    if action in ACTIONS and len(args.target) > 1:
        sweep_id = _sweep_id(args)
        with connection_from(args).client() as http:
            if action == "show":
                sweep = checked(http.get(f"/sweeps/{sweep_id}")).json()
            elif action == "final-run":
                body = checked(
                    http.post(f"/sweeps/{sweep_id}/final-run", json={"split": args.split})
                ).json()
                print(f"queued job {body['job_id']}: the best spec on split {body['split']!r}")
                return 0
            else:
                sweep = checked(http.post(f"/sweeps/{sweep_id}/{action}")).json()
        print(sweep_rows([sweep]))
        print(trial_rows(sweep))
        if sweep.get("importance"):
            ranked = sorted(sweep["importance"].items(), key=lambda kv: -kv[1])
            print("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in ranked))
        return 0
    if len(args.target) != 1:
        raise UsageError("usage: distillery sweep SPEC --space SPACE.yaml")
    if args.space is None:
        raise UsageError("--space SPACE.yaml is required to start a sweep")
    body = sweep_body(argparse.Namespace(**{**vars(args), "target": [Path(action)]}))
    with connection_from(args).client() as http:
        sweep = checked(http.post("/sweeps", json=body)).json()
    print(
        f"sweep {sweep['id']} started: {sweep['config']['trials']} trials, "
        f"{sweep['config']['parallel']} at once, {sweep['config']['method']}"
    )
    return 0


def cmd_sweeps(args: argparse.Namespace) -> int:
    """List the team's sweeps."""
    with connection_from(args).client() as http:
        body = checked(http.get("/sweeps", params={"limit": args.limit})).json()
    print(sweep_rows(page_items(body)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `sweep` and `sweeps` on the top-level parser."""
    common = common_options()
    sweep = sub.add_parser(
        "sweep",
        parents=[common],
        help="start a sweep (SPEC --space SPACE.yaml) or act on one (show|pause|resume|cancel|"
        "final-run ID)",
    )
    sweep.add_argument("target", nargs="+", help="SPEC file, or an action and a sweep id")
    sweep.add_argument("--space", type=Path, help="search space (YAML: spec path -> range)")
    sweep.add_argument("--dataset", type=int, help="platform dataset id (sets data.dataset_id)")
    sweep.add_argument("--teacher", type=int, help="platform teacher id (sets teacher.teacher_id)")
    sweep.add_argument("--trials", type=int, help="budget: trials in all")
    sweep.add_argument("--parallel", type=int, help="trials in flight at once")
    sweep.add_argument("--hours", type=float, help="budget: hours")
    sweep.add_argument("--method", choices=("random", "tpe", "grid"))
    sweep.add_argument("--objective", help="val metric to maximise (default AP_small)")
    sweep.add_argument("--pruner", choices=("median", "halving", "none"))
    sweep.add_argument("--name")
    sweep.add_argument("--split", default="test", help="final-run: the split to evaluate on")
    sweep.set_defaults(handler=guarded(cmd_sweep))
    sweeps = sub.add_parser("sweeps", parents=[common], help="list a server's sweeps")
    sweeps.add_argument("--limit", type=int, default=50)
    sweeps.set_defaults(handler=guarded(cmd_sweeps))

"""Commands that make and manage jobs: `submit` (with ablation presets), `jobs`, `cancel`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cli.connection import (
    ClientError,
    UsageError,
    checked,
    common_options,
    connection_from,
    guarded,
    page_items,
)
from cli.figures import ap_percent, job_ap
from cli.follow import follow_job
from cli.states import JOB_KINDS, JOB_STATES, TERMINAL_STATES
from cli.tables import format_table
from core.spec import ABLATION_PRESETS, AblationPreset, DistillSpec, ablation_distill

# --- specs ----------------------------------------------------------------------------------


def load_spec_file(path: Path) -> dict[str, Any]:
    """A job spec from a YAML or JSON file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ClientError(f"{path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ClientError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ClientError(f"{path}: a job spec is a mapping (kind, data, ...)")
    return data


def apply_ids(
    spec: dict[str, Any],
    *,
    dataset: int | None,
    teacher: int | None,
    student_backbone: int | None = None,
    teacher_backbone: int | None = None,
) -> dict[str, Any]:
    """The spec pointed at platform ids (a local data path makes no sense on a server)."""
    spec = json.loads(json.dumps(spec))
    for key, backbone in (("student", student_backbone), ("teacher", teacher_backbone)):
        if backbone is not None:
            part = spec.setdefault(key, {}) or {}
            part["backbone_id"] = backbone
            part.pop("pretrained_backbone", None)
            spec[key] = part
    if dataset is not None:
        data = spec.setdefault("data", {})
        data["dataset_id"] = dataset
        data.pop("path", None)
    if teacher is not None:
        section = spec.setdefault("teacher", {}) or {}
        section["teacher_id"] = teacher
        section.pop("checkpoint", None)
        spec["teacher"] = section
    return spec


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in ("distill", *error.get("loc", ())))
    return f"{where}: {error.get('msg', 'invalid')}"


def apply_preset(spec: dict[str, Any], preset: str) -> dict[str, Any]:
    """The spec with its `distill` section replaced by ablation preset `preset`'s
    (core.spec.ablation_distill applied to the spec's own distill section)."""
    if preset not in ABLATION_PRESETS:
        raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(ABLATION_PRESETS)}")
    if spec.get("kind") != "distill":
        raise UsageError(
            f"--preset {preset}: presets set a distillation's KD terms, and this spec's kind "
            f"is {spec.get('kind')!r}, not 'distill'"
        )
    section = spec.get("distill") or {}
    try:
        base = DistillSpec.model_validate(section)
    except ValidationError as exc:
        raise ClientError(_first_error(exc)) from None
    chosen: AblationPreset = preset  # type: ignore[assignment]
    out = json.loads(json.dumps(spec))
    out["distill"] = ablation_distill(base, chosen).model_dump(mode="json")
    return out


def _ids_used(job: Mapping[str, Any], preset: str | None) -> str:
    spec = job.get("spec") or {}
    dataset = job.get("dataset_id") or (spec.get("data") or {}).get("dataset_id")
    teacher = job.get("teacher_id") or (spec.get("teacher") or {}).get("teacher_id")
    parts = [f"dataset {dataset if dataset is not None else '-'}"]
    if job.get("kind") == "teacher":
        parts.append("trains a teacher (`distillery follow` names its teacher id)")
    else:
        parts.append(f"teacher {teacher if teacher is not None else '-'}")
    for key in ("teacher", "student"):
        backbone = (spec.get(key) or {}).get("backbone_id")
        if backbone is not None:
            parts.append(f"{key} backbone {backbone}")
    if preset:
        parts.append(f"preset {preset}")
    return ", ".join(parts)


# --- commands -------------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit a job spec; prints the new job's id and the dataset and teacher ids it uses."""
    spec = apply_ids(
        load_spec_file(args.spec),
        dataset=args.dataset,
        teacher=args.teacher,
        student_backbone=args.student_backbone,
        teacher_backbone=args.teacher_backbone,
    )
    name = args.name
    if args.preset:
        spec = apply_preset(spec, args.preset)
        name = name or f"{spec.get('name') or args.spec.stem} ({args.preset})"
    body: dict[str, Any] = {"spec": spec}
    if name:
        body["name"] = name
    conn = connection_from(args)
    with conn.client() as http:
        job = checked(http.post("/jobs", json=body)).json()
    label = job.get("name") or job.get("kind")
    print(f"job {job['id']} {job.get('state', 'queued')}: {label}")
    print(f"  {_ids_used(job, args.preset)}")
    if args.follow:
        return follow_job(conn, int(job["id"]))
    return 0


def progress_cell(job: Mapping[str, Any]) -> str:
    """A job's progress in a table cell: `distill ep 2/5 40%`."""
    progress = job.get("progress") or {}
    if not isinstance(progress, Mapping) or not progress:
        return "-"
    epoch = f"ep {progress.get('epoch', 0)}/{progress.get('epochs', 0)}"
    total = progress.get("total_steps") or 0
    step = progress.get("step") or 0
    pct = f" {100 * step / total:.0f}%" if total else ""
    stage = progress.get("stage")
    return (f"{stage} " if stage else "") + epoch + pct


def creator(job: Mapping[str, Any]) -> str:
    """Who ran a job: the creator's e-mail (a user id when the row has none)."""
    if job.get("creator_email"):
        return str(job["creator_email"])
    return f"user {job['created_by']}" if job.get("created_by") else "-"


def job_rows(jobs: list[dict[str, Any]]) -> str:
    """The job list as a table: who ran it, its state, progress and headline AP in percent.

    Reads list rows as summaries (no `spec`): every field may be absent.
    """
    header = ["ID", "NAME", "KIND", "STATE", "PROGRESS", "AP", "AP_SMALL", "BY", "CREATED"]
    rows = [
        [
            str(j.get("id")),
            str(j.get("name") or "")[:40],
            str(j.get("kind") or "-"),
            str(j.get("state") or "-"),
            progress_cell(j),
            ap_percent(job_ap(j, "AP")),
            ap_percent(job_ap(j, "AP_small")),
            creator(j),
            str(j.get("created_at") or "")[:16].replace("T", " "),
        ]
        for j in jobs
    ]
    return format_table(rows, header)


def cmd_jobs(args: argparse.Namespace) -> int:
    """List jobs as a table."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = ",".join(args.state)
    if args.kind:
        params["kind"] = args.kind
    if args.mine:
        params["created_by"] = "me"
    if args.search:
        params["q"] = args.search
    with connection_from(args).client() as http:
        body = checked(http.get("/jobs", params=params)).json()
    jobs = page_items(body)
    print(job_rows(jobs))
    count = body.get("count") if isinstance(body, dict) else None
    if isinstance(count, int) and count > len(jobs):
        print(f"({len(jobs)} of {count}; --limit for more)")
    return 0


def _confirm(question: str) -> bool:
    """Ask on the terminal; only `y` / `yes` is a yes."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a job, after a confirmation on a terminal unless --yes."""
    with connection_from(args).client() as http:
        job = checked(http.get(f"/jobs/{args.job}")).json()
        state = job.get("state")
        if state in TERMINAL_STATES:
            raise ClientError(f"job {args.job} is already {state}")
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"job {args.job} is {state}; not asking without a terminal: "
                    "cancel it with --yes"
                )
            name = job.get("name") or job.get("kind")
            if not _confirm(f"Cancel job {args.job} {name!r} ({state}, {progress_cell(job)})?"):
                print(f"job {args.job} not canceled")
                return 1
        job = checked(http.post(f"/jobs/{args.job}/cancel")).json()
    if job.get("state") == "canceled":
        print(f"job {args.job} canceled")
    else:
        print(f"job {args.job} {job.get('state')}: cancel requested; it stops at its next step")
    return 0


# --- registration ---------------------------------------------------------------------------


def job_states(raw: str) -> list[str]:
    """`--state running,queued` as a list of known states (argparse type)."""
    states = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in states if s not in JOB_STATES]
    if unknown or not states:
        raise argparse.ArgumentTypeError(
            f"{(unknown or [raw])[0]!r} is not one of {', '.join(JOB_STATES)}"
        )
    return states


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `submit`, `jobs` and `cancel` on the top-level parser."""
    common = common_options()
    submit = sub.add_parser("submit", parents=[common], help="submit a job spec (YAML) to a server")
    submit.add_argument("spec", type=Path, help="job spec file (YAML or JSON)")
    submit.add_argument("--dataset", type=int, help="platform dataset id (sets data.dataset_id)")
    submit.add_argument("--teacher", type=int, help="platform teacher id (sets teacher.teacher_id)")
    submit.add_argument(
        "--student-backbone",
        type=int,
        metavar="ID",
        help="uploaded backbone weights the student starts from (sets student.backbone_id)",
    )
    submit.add_argument(
        "--teacher-backbone",
        type=int,
        metavar="ID",
        help="uploaded backbone weights a teacher job starts from (sets teacher.backbone_id)",
    )
    submit.add_argument(
        "--preset",
        choices=ABLATION_PRESETS,
        help="ablation preset applied to the spec's distill section: "
        + ", ".join(ABLATION_PRESETS),
    )
    submit.add_argument("--name", help="job name (with --preset default: '<spec> (<preset>)')")
    submit.add_argument("--follow", action="store_true", help="then follow its progress")
    submit.set_defaults(handler=guarded(cmd_submit))

    jobs = sub.add_parser("jobs", parents=[common], help="list a server's jobs")
    jobs.add_argument("--state", type=job_states, help="a state or a list: " + ",".join(JOB_STATES))
    jobs.add_argument("--kind", choices=JOB_KINDS)
    jobs.add_argument("--mine", action="store_true", help="only the jobs you submitted")
    jobs.add_argument("--search", help="only jobs whose name contains this")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.set_defaults(handler=guarded(cmd_jobs))

    cancel = sub.add_parser("cancel", parents=[common], help="cancel a queued or running job")
    cancel.add_argument("job", type=int)
    cancel.add_argument(
        "--yes", action="store_true", help="do not ask (required when stdin is not a terminal)"
    )
    cancel.set_defaults(handler=guarded(cmd_cancel))

"""The `download` command: a job's artifacts, named by job, never overwriting without --force."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from cli.connection import (
    ClientError,
    checked,
    common_options,
    connection_from,
    guarded,
    page_items,
)

WEIGHT_KINDS = ("student_safetensors", "teacher_safetensors")
"""What `download JOB` fetches without an artifact name: the first of these the job has."""


def local_name(job_id: int, artifact: str) -> str:
    """The file name of a job's artifact here: `job-12-student.safetensors`
    (`pictures/attention_p2.png` -> `job-12-pictures-attention_p2.png`)."""
    flat = "-".join(part for part in artifact.split("/") if part not in ("", ".", ".."))
    return f"job-{job_id}-{flat or 'artifact'}"


def download_artifact(
    http: httpx.Client, job_id: int, name: str, target: Path, *, force: bool = False
) -> Path:
    """Stream artifact `name` of the job to `target` (following a presigned redirect).

    The bytes go to `<target>.part` first; an existing `target` is replaced only with
    `force` (ClientError naming it otherwise).
    """
    if target.exists() and not force:
        raise ClientError(f"{target} exists; not overwriting it (--force replaces it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with http.stream(
            "GET", f"/jobs/{job_id}/artifacts/{name}", follow_redirects=True
        ) as response:
            if response.status_code >= 400:
                response.read()
                checked(response)
            with partial.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        if target.exists() and not force:
            raise ClientError(f"{target} exists; not overwriting it (--force replaces it)")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def choose(
    job_id: int, artifacts: Sequence[Mapping[str, Any]], wanted: str | None, *, every: bool
) -> list[str]:
    """The artifact names to fetch: all, the one asked for, or the job's model weights."""
    names = [str(a["name"]) for a in artifacts]
    if every:
        return names
    if wanted:
        if wanted not in names:
            raise ClientError(
                f"job {job_id} has no artifact {wanted!r}; it has: " + (", ".join(names) or "none")
            )
        return [wanted]
    for kind in WEIGHT_KINDS:
        found = [str(a["name"]) for a in artifacts if a.get("kind") == kind]
        if found:
            return found[:1]
    raise ClientError(
        f"job {job_id} has no model weights yet; artifacts: " + (", ".join(names) or "none")
    )


def cmd_download(args: argparse.Namespace) -> int:
    """Download a job's artifacts (default: its model's safetensors) as job-<id>-<name>."""
    out: Path = args.out
    with connection_from(args).client() as http:
        artifacts = page_items(checked(http.get(f"/jobs/{args.job}/artifacts")).json())
        chosen = choose(args.job, artifacts, args.artifact, every=args.all)
        targets = {name: out / local_name(args.job, name) for name in chosen}
        existing = [str(path) for path in targets.values() if path.exists()]
        if existing and not args.force:
            raise ClientError(
                f"not overwriting {', '.join(existing)} (--force replaces "
                + ("it)" if len(existing) == 1 else "them)")
            )
        for name, target in targets.items():
            print(download_artifact(http, args.job, name, target, force=args.force))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `download` on the top-level parser."""
    download = sub.add_parser(
        "download",
        parents=[common_options()],
        help="download a job's artifacts as job-<id>-<name> (default: its model weights)",
    )
    download.add_argument("job", type=int)
    download.add_argument(
        "artifact",
        nargs="?",
        help="artifact name (default: the model's safetensors; an unknown name lists them)",
    )
    download.add_argument("--all", action="store_true", help="every artifact of the job")
    download.add_argument("--out", type=Path, default=Path("."), help="folder (default: .)")
    download.add_argument("--force", action="store_true", help="replace files that exist already")
    download.set_defaults(handler=guarded(cmd_download))

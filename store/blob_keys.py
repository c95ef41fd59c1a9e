"""The layout of the blob store: every key the platform writes is made here, nowhere else.

datasets/<team>/<dataset>/archive<.zip|.tar...>   an uploaded dataset archive
teachers/<team>/<teacher>/checkpoint<suffix>      an uploaded teacher checkpoint
teachers/job-<job>/<file>                         a teacher trained by a job
backbones/<team>/<backbone>/weights<suffix>       uploaded backbone weights
jobs/<job>/<artifact name>                        a job's artifacts (pictures/ inside)
jobs/<job>/checkpoints/last.pt                    a job's training checkpoint (resume)
datasets/demo/<digest>.zip, teachers/demo/<file>  the demo of `distillery serve --demo`
"""

from __future__ import annotations

from typing import Literal

UploadKind = Literal["dataset", "teacher", "backbone"]


def dataset_archive_key(team_id: int, dataset_id: int, suffix: str) -> str:
    """Where an uploaded dataset archive lies (`suffix` such as '.zip' or '.tar.gz')."""
    return f"datasets/{team_id}/{dataset_id}/archive{suffix}"


def teacher_checkpoint_key(team_id: int, teacher_id: int, suffix: str) -> str:
    """Where an uploaded teacher checkpoint lies (`suffix` such as '.safetensors')."""
    return f"teachers/{team_id}/{teacher_id}/checkpoint{suffix}"


def backbone_weights_key(team_id: int, backbone_id: int, suffix: str) -> str:
    """Where uploaded backbone weights lie (`suffix` such as '.pth')."""
    return f"backbones/{team_id}/{backbone_id}/weights{suffix}"


def upload_prefix(kind: UploadKind, team_id: int, row_id: int) -> str:
    """The folder of everything stored for one uploaded dataset, teacher or backbone."""
    return f"{kind}s/{team_id}/{row_id}/"


def job_teacher_key(job_id: int, file_name: str) -> str:
    """Where the weights of a teacher trained by a job lie."""
    return f"teachers/job-{job_id}/{file_name}"


def job_prefix(job_id: int) -> str:
    """The folder of everything stored for one job."""
    return f"jobs/{job_id}/"


def job_artifact_key(job_id: int, name: str) -> str:
    """Where a job's artifact `name` (possibly with folders: `pictures/a.png`) lies."""
    return f"{job_prefix(job_id)}{name}"


def job_checkpoint_key(job_id: int) -> str:
    """Where a job's latest training checkpoint lies (a re-queued job resumes from it)."""
    return job_artifact_key(job_id, "checkpoints/last.pt")


def demo_dataset_key(digest: str) -> str:
    """Where the demo's synthetic dataset archive lies (by the archive's SHA-256)."""
    return f"datasets/demo/{digest[:16]}.zip"


def demo_teacher_key(file_name: str) -> str:
    """Where the demo's teacher checkpoint lies."""
    return f"teachers/demo/{file_name}"

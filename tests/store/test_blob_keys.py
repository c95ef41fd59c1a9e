"""The blob layout: deleting a row's prefix removes everything stored for it, nothing else."""

from __future__ import annotations

from store import blob_keys as keys


def test_an_upload_prefix_holds_its_file_and_no_other_rows() -> None:
    archive = keys.dataset_archive_key(3, 14, ".tar.gz")
    checkpoint = keys.teacher_checkpoint_key(3, 14, ".safetensors")
    assert archive.startswith(keys.upload_prefix("dataset", 3, 14))
    assert checkpoint.startswith(keys.upload_prefix("teacher", 3, 14))
    # Row 1 of team 3 must not sweep row 14's files, nor team 31's.
    assert not archive.startswith(keys.upload_prefix("dataset", 3, 1))
    assert not archive.startswith(keys.upload_prefix("dataset", 31, 14))
    assert not checkpoint.startswith(keys.upload_prefix("dataset", 3, 14))


def test_a_job_prefix_holds_its_artifacts_and_checkpoint_only() -> None:
    prefix = keys.job_prefix(7)
    assert keys.job_artifact_key(7, "pictures/a.png").startswith(prefix)
    assert keys.job_checkpoint_key(7).startswith(prefix)
    assert not keys.job_artifact_key(70, "report.md").startswith(prefix)
    # A teacher a job trained outlives the job's files: it is a team's teacher now.
    assert not keys.job_teacher_key(7, "teacher.safetensors").startswith(prefix)

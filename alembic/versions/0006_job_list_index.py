"""The job list's index covers its whole default order: (team_id, created_at, id).

The list pages newest first with the id breaking ties; with the id in the index, a page is a
backward index scan instead of a sort of every row of the team.

Revision ID: 0006_job_list_index
Revises: 0005_metric_stage
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_job_list_index"
down_revision: str | None = "0005_metric_stage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Replace ix_jobs_team_created (team_id, created_at) by one with the id."""
    op.create_index("ix_jobs_team_created_id", "jobs", ["team_id", "created_at", "id"])
    op.drop_index("ix_jobs_team_created", table_name="jobs")


def downgrade() -> None:
    """Back to (team_id, created_at)."""
    op.create_index("ix_jobs_team_created", "jobs", ["team_id", "created_at"])
    op.drop_index("ix_jobs_team_created_id", table_name="jobs")

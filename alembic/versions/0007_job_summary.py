"""Jobs keep the summary of their spec that the job list shows (`core.spec_summary`).

A list page then reads a few fields per row instead of every row's whole spec. Rows written
before this revision have no summary; the list makes theirs from the spec as it reads them.

Revision ID: 0007_job_summary
Revises: 0006_job_list_index
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007_job_summary"
down_revision: str | None = "0006_job_list_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add jobs.summary (nullable JSON)."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("summary", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop jobs.summary."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("summary")

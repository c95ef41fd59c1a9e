"""Job tags and note: a team's labels and remark on a run, edited with PATCH /jobs/{id}.

Revision ID: 0002_job_tags_note
Revises: 0001 (0003_sweeps follows it)
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002_job_tags_note"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `jobs.tags` (a JSON list, empty by default) and `jobs.note` (empty by default)."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("note")
        batch.drop_column("tags")

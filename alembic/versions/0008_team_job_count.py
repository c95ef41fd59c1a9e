"""Teams keep the count of their jobs, so an unfiltered job list reads its total from one row.

Without it every page of the list counted the team's jobs again (an index scan of all of
them: about half of the page statement's time at 10,000 jobs). `store.repositories.jobs`
keeps the count with every job it creates or deletes, in the same transaction.

Revision ID: 0008_team_job_count
Revises: 0007_job_summary
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008_team_job_count"
down_revision: str | None = "0007_job_summary"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add teams.job_count and fill it from the jobs there are."""
    with op.batch_alter_table("teams") as batch:
        batch.add_column(sa.Column("job_count", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE teams SET job_count = (SELECT count(*) FROM jobs WHERE jobs.team_id = teams.id)"
    )


def downgrade() -> None:
    """Drop teams.job_count."""
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("job_count")

"""Sweeps: the sweeps table and the trial columns of jobs.

Revision ID: 0003_sweeps
Revises: 0002_job_tags_note
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003_sweeps"
down_revision: str | None = "0002_job_tags_note"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JOBS_SWEEP_FK = "fk_jobs_sweep_id"


def upgrade() -> None:
    """Create `sweeps` and add a trial's sweep, number, parameters, state and value to jobs."""
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("teacher_id", sa.Integer(), nullable=True),
        sa.Column("study_name", sa.String(200), nullable=False),
        sa.Column("best_job_id", sa.Integer(), nullable=True),
        sa.Column("best_value", sa.Float(), nullable=True),
        sa.Column("final_job_id", sa.Integer(), nullable=True),
        sa.Column("importance", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("advance_until", TIMESTAMP, nullable=True),
        sa.Column("advance_pending", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["teacher_id"], ["teachers.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_sweeps_team_id", "sweeps", ["team_id"])
    op.create_index("ix_sweeps_state", "sweeps", ["state"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_params", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("trial_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("trial_value", sa.Float(), nullable=True))
        batch.create_foreign_key(JOBS_SWEEP_FK, "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL")
        batch.create_index("ix_jobs_sweep_id", ["sweep_id"])


def downgrade() -> None:
    """Drop the trial columns of jobs and the sweeps table."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_sweep_id")
        batch.drop_constraint(JOBS_SWEEP_FK, type_="foreignkey")
        for column in ("trial_value", "trial_state", "trial_params", "trial_number", "sweep_id"):
            batch.drop_column(column)
    op.drop_index("ix_sweeps_state", "sweeps")
    op.drop_index("ix_sweeps_team_id", "sweeps")
    op.drop_table("sweeps")

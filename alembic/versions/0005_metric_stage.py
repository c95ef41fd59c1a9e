"""Metric points carry their stage (teacher, distill, finetune): series of a job whose steps
restart at each stage read in sequence on one global step axis.

Revision ID: 0005_metric_stage
Revises: 0004_backbones
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005_metric_stage"
down_revision: str | None = "0004_backbones"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `metric_points.stage` (NULL on older points: they read as the job's kind)."""
    with op.batch_alter_table("metric_points") as batch:
        batch.add_column(sa.Column("stage", sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("metric_points") as batch:
        batch.drop_column("stage")

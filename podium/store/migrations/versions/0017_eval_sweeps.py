"""eval sweeps: configurations of models, prompts and parameters tried against a suite

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 21:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_sweep",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("suite", _JSON, nullable=False),
        sa.Column("space", _JSON, nullable=True),
        sa.Column("objectives", _JSON, nullable=True),
        sa.Column("search", _JSON, nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_eval_sweep_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_eval_sweep")),
    )
    op.create_index(op.f("ix_eval_sweep_project_id_created_at"), "eval_sweep", ["project_id", "created_at"])
    op.create_table(
        "eval_sweep_trial",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("sweep_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("config", _JSON, nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("metrics", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "sweep_id"], ["eval_sweep.project_id", "eval_sweep.id"],
                                name=op.f("fk_eval_sweep_trial_project_id_eval_sweep"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "sweep_id", "number", name=op.f("pk_eval_sweep_trial")),
    )


def downgrade() -> None:
    op.drop_table("eval_sweep_trial")
    op.drop_index(op.f("ix_eval_sweep_project_id_created_at"), table_name="eval_sweep")
    op.drop_table("eval_sweep")

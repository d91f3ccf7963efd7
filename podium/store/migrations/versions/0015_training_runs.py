"""training runs, their steps and sweeps

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f(f"fk_{table}_project_id_project"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "training_sweep",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("space", _JSON, nullable=True),
        sa.Column("objective", _JSON, nullable=True),
        sa.Column("settings", _JSON, nullable=True),
        sa.Column("best_run_id", sa.String(length=64), nullable=True),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        _project_fk("training_sweep"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_training_sweep")),
    )
    op.create_index(op.f("ix_training_sweep_project_id_created_at"), "training_sweep", ["project_id", "created_at"])
    op.create_table(
        "training_run",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("base_model", sa.String(length=512), nullable=False),
        sa.Column("dataset_name", sa.String(length=200), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("data_path", sa.Text(), nullable=True),
        sa.Column("params", _JSON, nullable=True),
        sa.Column("hardware", _JSON, nullable=True),
        sa.Column("output_dir", sa.Text(), nullable=True),
        sa.Column("metrics", _JSON, nullable=True),
        sa.Column("artifacts", _JSON, nullable=True),
        sa.Column("sweep_id", sa.String(length=64), nullable=True),
        sa.Column("trial", sa.Integer(), nullable=True),
        sa.Column("tags", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        _project_fk("training_run"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_training_run")),
    )
    op.create_index(op.f("ix_training_run_project_id_created_at"), "training_run", ["project_id", "created_at"])
    op.create_index(op.f("ix_training_run_project_id_sweep_id"), "training_run", ["project_id", "sweep_id"])
    op.create_table(
        "training_step",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("learning_rate", sa.Float(), nullable=True),
        sa.Column("epoch", sa.Float(), nullable=True),
        sa.Column("grad_norm", sa.Float(), nullable=True),
        sa.Column("eval_loss", sa.Float(), nullable=True),
        sa.Column("extra", _JSON, nullable=True),
        sa.Column("logged_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "run_id"], ["training_run.project_id", "training_run.id"],
                                name=op.f("fk_training_step_project_id_training_run"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "run_id", "step", name=op.f("pk_training_step")),
    )


def downgrade() -> None:
    op.drop_table("training_step")
    op.drop_index(op.f("ix_training_run_project_id_sweep_id"), table_name="training_run")
    op.drop_index(op.f("ix_training_run_project_id_created_at"), table_name="training_run")
    op.drop_table("training_run")
    op.drop_index(op.f("ix_training_sweep_project_id_created_at"), table_name="training_sweep")
    op.drop_table("training_sweep")

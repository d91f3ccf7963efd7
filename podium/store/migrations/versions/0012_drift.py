"""drift monitors and their results

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_monitor",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("scope", _JSON, nullable=True),
        sa.Column("reference", _JSON, nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("features", _JSON, nullable=False),
        sa.Column("thresholds", _JSON, nullable=True),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_drift_monitor_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_drift_monitor")),
    )
    op.create_index(op.f("ix_drift_monitor_project_id_name"), "drift_monitor", ["project_id", "name"], unique=True)
    op.create_index(op.f("ix_drift_monitor_next_run_at"), "drift_monitor", ["next_run_at"], unique=False)
    op.create_table(
        "drift_result",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("monitor_id", sa.String(length=64), nullable=False),
        sa.Column("computed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("window_start", UtcDateTime(timezone=True), nullable=False),
        sa.Column("window_end", UtcDateTime(timezone=True), nullable=False),
        sa.Column("reference_start", UtcDateTime(timezone=True), nullable=True),
        sa.Column("reference_end", UtcDateTime(timezone=True), nullable=True),
        sa.Column("reference_n", sa.Integer(), nullable=False),
        sa.Column("current_n", sa.Integer(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("statistics", _JSON, nullable=True),
        sa.Column("details", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_drift_result_project_id_project"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id", "monitor_id"], ["drift_monitor.project_id", "drift_monitor.id"],
                                name=op.f("fk_drift_result_project_id_drift_monitor"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_drift_result")),
    )
    op.create_index(op.f("ix_drift_result_project_id_monitor_id_computed_at"), "drift_result",
                    ["project_id", "monitor_id", "computed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_drift_result_project_id_monitor_id_computed_at"), table_name="drift_result")
    op.drop_table("drift_result")
    op.drop_index(op.f("ix_drift_monitor_next_run_at"), table_name="drift_monitor")
    op.drop_index(op.f("ix_drift_monitor_project_id_name"), table_name="drift_monitor")
    op.drop_table("drift_monitor")

"""saved dashboards and charts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("layout", _JSON, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_dashboard_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_dashboard")),
    )
    op.create_index(op.f("ix_dashboard_project_id_name"), "dashboard", ["project_id", "name"], unique=True)
    op.create_table(
        "dashboard_chart",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("dashboard_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=300), nullable=False),
        sa.Column("agg", sa.String(length=16), nullable=False),
        sa.Column("dimension", sa.String(length=32), nullable=True),
        sa.Column("filters", _JSON, nullable=True),
        sa.Column("chart_type", sa.String(length=16), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        sa.Column("range_s", sa.Integer(), nullable=True),
        sa.Column("top", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["project_id", "dashboard_id"], ["dashboard.project_id", "dashboard.id"],
                                name=op.f("fk_dashboard_chart_project_id_dashboard"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "dashboard_id", "id", name=op.f("pk_dashboard_chart")),
    )


def downgrade() -> None:
    op.drop_table("dashboard_chart")
    op.drop_index(op.f("ix_dashboard_project_id_name"), table_name="dashboard")
    op.drop_table("dashboard")

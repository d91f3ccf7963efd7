"""canary deployments and their events

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canary",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("gateway_alias", sa.String(length=256), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=False),
        sa.Column("steps", _JSON, nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_duration_s", sa.Integer(), nullable=False),
        sa.Column("min_requests", sa.Integer(), nullable=False),
        sa.Column("gates", _JSON, nullable=False),
        sa.Column("suite", _JSON, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("promote_alias", sa.String(length=64), nullable=False),
        sa.Column("alert_rule", sa.String(length=64), nullable=True),
        sa.Column("original_spec", _JSON, nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("step_started_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_check", _JSON, nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_canary_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_canary")),
    )
    op.create_index(op.f("ix_canary_project_id_gateway_alias_status"), "canary",
                    ["project_id", "gateway_alias", "status"])
    op.create_index(op.f("ix_canary_status_next_check_at"), "canary", ["status", "next_check_at"])
    op.create_table(
        "canary_event",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("canary_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("detail", _JSON, nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "canary_id"], ["canary.project_id", "canary.id"],
                                name=op.f("fk_canary_event_project_id_canary"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "canary_id", "seq", name=op.f("pk_canary_event")),
    )


def downgrade() -> None:
    op.drop_table("canary_event")
    op.drop_index(op.f("ix_canary_status_next_check_at"), table_name="canary")
    op.drop_index(op.f("ix_canary_project_id_gateway_alias_status"), table_name="canary")
    op.drop_table("canary")

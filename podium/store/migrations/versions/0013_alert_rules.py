"""alert rules, their state and history

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rule",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("condition", _JSON, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("op", sa.String(length=4), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("params", _JSON, nullable=True),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("min_samples", sa.Integer(), nullable=False),
        sa.Column("cooldown_s", sa.Integer(), nullable=False),
        sa.Column("renotify_s", sa.Integer(), nullable=False),
        sa.Column("eval_interval_s", sa.Integer(), nullable=False),
        sa.Column("channels", _JSON, nullable=True),
        sa.Column("muted_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("notified_episode", sa.Integer(), nullable=False),
        sa.Column("fired_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_notified_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_evaluated_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("next_eval_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_alert_rule_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_alert_rule")),
    )
    op.create_index(op.f("ix_alert_rule_project_id_name"), "alert_rule", ["project_id", "name"], unique=True)
    op.create_index(op.f("ix_alert_rule_next_eval_at"), "alert_rule", ["next_eval_at"])
    op.create_table(
        "alert_event",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("window_start", UtcDateTime(timezone=True), nullable=True),
        sa.Column("window_end", UtcDateTime(timezone=True), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("deliveries", _JSON, nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "rule_id"], ["alert_rule.project_id", "alert_rule.id"],
                                name=op.f("fk_alert_event_project_id_alert_rule"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_alert_event")),
    )
    op.create_index(op.f("ix_alert_event_project_id_created_at"), "alert_event", ["project_id", "created_at"])
    op.create_index(op.f("ix_alert_event_project_id_rule_id_created_at"), "alert_event",
                    ["project_id", "rule_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_event_project_id_rule_id_created_at"), table_name="alert_event")
    op.drop_index(op.f("ix_alert_event_project_id_created_at"), table_name="alert_event")
    op.drop_table("alert_event")
    op.drop_index(op.f("ix_alert_rule_next_eval_at"), table_name="alert_rule")
    op.drop_index(op.f("ix_alert_rule_project_id_name"), table_name="alert_rule")
    op.drop_table("alert_rule")

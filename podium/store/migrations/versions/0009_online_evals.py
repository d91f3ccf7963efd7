"""online evaluation rules

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "online_eval_rule",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("target", _JSON, nullable=False),
        sa.Column("filter", _JSON, nullable=True),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("scorers", _JSON, nullable=False),
        sa.Column("mapping", _JSON, nullable=True),
        sa.Column("delay_s", sa.Float(), nullable=False),
        sa.Column("cursor_time", UtcDateTime(timezone=True), nullable=True),
        sa.Column("cursor_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_online_eval_rule_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_online_eval_rule")),
    )
    op.create_index(op.f("ix_online_eval_rule_project_id_name"), "online_eval_rule", ["project_id", "name"],
                    unique=True)
    op.create_table(
        "online_eval_stat",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("bucket", UtcDateTime(timezone=True), nullable=False),
        sa.Column("matched", sa.BigInteger(), nullable=False),
        sa.Column("evaluated", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("judge_calls", sa.BigInteger(), nullable=False),
        sa.Column("judge_cost", sa.Float(), nullable=False),
        sa.Column("lag_s_sum", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_online_eval_stat_project_id_project"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id", "rule_id"], ["online_eval_rule.project_id", "online_eval_rule.id"],
                                name=op.f("fk_online_eval_stat_project_id_online_eval_rule"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "rule_id", "bucket", name=op.f("pk_online_eval_stat")),
    )
    op.create_index("ix_trace_project_id_updated_at", "trace", ["project_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_trace_project_id_updated_at", table_name="trace")
    op.drop_table("online_eval_stat")
    op.drop_index(op.f("ix_online_eval_rule_project_id_name"), table_name="online_eval_rule")
    op.drop_table("online_eval_rule")

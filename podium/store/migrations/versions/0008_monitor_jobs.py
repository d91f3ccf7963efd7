"""job queue for online evaluation and other background work

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_job",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("dedup_key", sa.String(length=256), nullable=True),
        sa.Column("payload", _JSON, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("enqueued_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_monitor_job_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_monitor_job")),
    )
    op.create_index(op.f("ix_monitor_job_project_id_kind_dedup_key"), "monitor_job",
                    ["project_id", "kind", "dedup_key"], unique=True)
    op.create_index(op.f("ix_monitor_job_kind_available_at"), "monitor_job", ["kind", "available_at"],
                    sqlite_where=sa.text("status <> 'dead'"), postgresql_where=sa.text("status <> 'dead'"))
    op.create_index(op.f("ix_monitor_job_id"), "monitor_job", ["id"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        # A queue table churns (insert, update, delete per job): vacuum it after 1,000 dead rows, not 20%
        # of the table, so claims do not wade through dead index entries.
        op.execute("ALTER TABLE monitor_job SET (autovacuum_vacuum_scale_factor = 0.0, "
                   "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)")


def downgrade() -> None:
    op.drop_index(op.f("ix_monitor_job_id"), table_name="monitor_job")
    op.drop_index(op.f("ix_monitor_job_kind_available_at"), table_name="monitor_job")
    op.drop_index(op.f("ix_monitor_job_project_id_kind_dedup_key"), table_name="monitor_job")
    op.drop_table("monitor_job")

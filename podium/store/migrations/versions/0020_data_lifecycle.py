"""retention policies, legal holds and data-subject request receipts (issue 16)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policy",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("traces_days", sa.Integer(), nullable=True),
        sa.Column("scores_days", sa.Integer(), nullable=True),
        sa.Column("gateway_days", sa.Integer(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("legal_hold_reason", sa.Text(), nullable=True),
        sa.Column("next_run_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_retention_policy_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_retention_policy")),
    )
    op.create_table(
        "retention_run",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cutoffs", _JSON, nullable=True),
        sa.Column("counts", _JSON, nullable=True),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("max_tx_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_retention_run_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_retention_run")),
    )
    op.create_index(op.f("ix_retention_run_project_id_started_at"), "retention_run", ["project_id", "started_at"])
    op.create_table(
        "subject_request",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("notes", _JSON, nullable=True),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_subject_request_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_subject_request")),
    )
    op.create_index(op.f("ix_subject_request_project_id_created_at"), "subject_request",
                    ["project_id", "created_at"])
    op.create_index("ix_score_retention", "score", ["project_id", "timestamp"])
    op.create_index("ix_annotation_item_trace", "annotation_item", ["project_id", "trace_id"])


def downgrade() -> None:
    op.drop_index("ix_annotation_item_trace", table_name="annotation_item")
    op.drop_index("ix_score_retention", table_name="score")
    op.drop_index(op.f("ix_subject_request_project_id_created_at"), table_name="subject_request")
    op.drop_table("subject_request")
    op.drop_index(op.f("ix_retention_run_project_id_started_at"), table_name="retention_run")
    op.drop_table("retention_run")
    op.drop_table("retention_policy")

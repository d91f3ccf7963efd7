"""annotation queues

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation_queue",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("score_config_ids", _JSON, nullable=False),
        sa.Column("reviews_per_item", sa.Integer(), nullable=False),
        sa.Column("lock_seconds", sa.Integer(), nullable=False),
        sa.Column("source", _JSON, nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_annotation_queue_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_annotation_queue")),
    )
    op.create_index(op.f("ix_annotation_queue_project_id_name"), "annotation_queue", ["project_id", "name"],
                    unique=True)
    op.create_table(
        "annotation_item",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("queue_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("trace_id", sa.String(length=128), nullable=False),
        sa.Column("span_id", sa.String(length=128), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("review_count", sa.Integer(), nullable=False),
        sa.Column("assigned_to", sa.String(length=256), nullable=True),
        sa.Column("locked_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "queue_id"], ["annotation_queue.project_id", "annotation_queue.id"],
                                name=op.f("fk_annotation_item_project_id_annotation_queue"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "queue_id", "id", name=op.f("pk_annotation_item")),
    )
    op.create_index(op.f("ix_annotation_item_project_id_queue_id_status_position"), "annotation_item",
                    ["project_id", "queue_id", "status", "position"], unique=False)
    op.create_table(
        "annotation",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("queue_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("annotator", sa.String(length=256), nullable=False),
        sa.Column("score_config_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("score_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "queue_id", "item_id"],
                                ["annotation_item.project_id", "annotation_item.queue_id", "annotation_item.id"],
                                name=op.f("fk_annotation_project_id_annotation_item"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "queue_id", "item_id", "annotator", "score_config_id",
                                name=op.f("pk_annotation")),
    )
    op.create_index(op.f("ix_annotation_project_id_queue_id_annotator_created_at"), "annotation",
                    ["project_id", "queue_id", "annotator", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_annotation_project_id_queue_id_annotator_created_at"), table_name="annotation")
    op.drop_table("annotation")
    op.drop_index(op.f("ix_annotation_item_project_id_queue_id_status_position"), table_name="annotation_item")
    op.drop_table("annotation_item")
    op.drop_index(op.f("ix_annotation_queue_project_id_name"), table_name="annotation_queue")
    op.drop_table("annotation_queue")

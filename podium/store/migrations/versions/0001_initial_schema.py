"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:25:37.445825
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import podium.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "project",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
        sa.UniqueConstraint("name", name=op.f("uq_project_name")),
    )
    op.create_table(
        "trace_tag",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("trace_id", sa.String(length=128), nullable=False),
        sa.Column("tag", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "trace_id", "tag", name=op.f("pk_trace_tag")),
    )
    with op.batch_alter_table("trace_tag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_tag_project_id_tag"), ["project_id", "tag"], unique=False)

    op.create_table(
        "api_key",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_hint", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", podium.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_api_key_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("public_key", name=op.f("uq_api_key_public_key")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_api_key_secret_hash")),
    )
    op.create_table(
        "model_price",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("input_per_million", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("output_per_million", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("cached_input_per_million", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("updated_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_model_price_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "model", name=op.f("pk_model_price")),
    )
    op.create_table(
        "score",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("trace_id", sa.String(length=128), nullable=True),
        sa.Column("span_id", sa.String(length=128), nullable=True),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("string_value", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("timestamp", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_score_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_score")),
    )
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_score_project_id_name_timestamp"),
            ["project_id", "name", "timestamp"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_score_project_id_session_id"), ["project_id", "session_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_score_project_id_trace_id"), ["project_id", "trace_id"], unique=False
        )

    op.create_table(
        "span",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("trace_id", sa.String(length=128), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("parent_id", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_time", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("end_time", podium.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("provider", sa.String(length=256), nullable=True),
        sa.Column(
            "model_parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "input",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.Column(
            "usage_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("usage_estimated", sa.Boolean(), nullable=True),
        sa.Column("cost_input", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("cost_output", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("cost_total", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("completion_start_time", podium.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("prompt_name", sa.String(length=256), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("updated_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_span_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "trace_id", "id", name=op.f("pk_span")),
    )
    with op.batch_alter_table("span", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_span_project_id_model_trace_id"), ["project_id", "model", "trace_id"], unique=False
        )
        batch_op.create_index(
            "ix_span_roots",
            ["project_id", "trace_id", "start_time"],
            sqlite_where=sa.text("parent_id IS NULL"),
            postgresql_where=sa.text("parent_id IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_span_project_id_trace_id_parent_id"),
            ["project_id", "trace_id", "parent_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_span_project_id_trace_id_start_time"),
            ["project_id", "trace_id", "start_time"],
            unique=False,
        )

    op.create_table(
        "trace",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=True),
        sa.Column("name_explicit", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=True),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column("release", sa.String(length=256), nullable=True),
        sa.Column("environment", sa.String(length=256), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "input",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("input_explicit", sa.Boolean(), nullable=False),
        sa.Column("output_explicit", sa.Boolean(), nullable=False),
        sa.Column("start_time", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("end_time", podium.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cost", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("updated_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_trace_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_trace")),
    )
    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trace_project_id_session_id_start_time"),
            ["project_id", "session_id", "start_time"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_trace_project_id_start_time"), ["project_id", "start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trace_project_id_total_cost"), ["project_id", "total_cost"])
        batch_op.create_index(batch_op.f("ix_trace_project_id_latency_ms"), ["project_id", "latency_ms"])
        batch_op.create_index(
            batch_op.f("ix_trace_project_id_user_id_start_time"),
            ["project_id", "user_id", "start_time"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("trace", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_project_id_user_id_start_time"))
        batch_op.drop_index(batch_op.f("ix_trace_project_id_start_time"))
        batch_op.drop_index(batch_op.f("ix_trace_project_id_session_id_start_time"))

    op.drop_table("trace")
    with op.batch_alter_table("span", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_span_project_id_trace_id_start_time"))
        batch_op.drop_index(batch_op.f("ix_span_project_id_trace_id_parent_id"))
        batch_op.drop_index(batch_op.f("ix_span_project_id_model_trace_id"))

    op.drop_table("span")
    with op.batch_alter_table("score", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_score_project_id_trace_id"))
        batch_op.drop_index(batch_op.f("ix_score_project_id_session_id"))
        batch_op.drop_index(batch_op.f("ix_score_project_id_name_timestamp"))

    op.drop_table("score")
    op.drop_table("model_price")
    op.drop_table("api_key")
    with op.batch_alter_table("trace_tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_tag_project_id_tag"))

    op.drop_table("trace_tag")
    op.drop_table("project")

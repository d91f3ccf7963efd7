"""prompts: prompts, immutable versions, labels (A/B targets), label history, settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import podium.store.types

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = podium.store.types.UtcDateTime(timezone=True)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _prompt_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id", "name"], ["prompt.project_id", "prompt.name"], name=op.f(f"fk_{table}_project_id_prompt"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "prompt",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("tags", _JSON, nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_prompt_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_prompt")),
    )
    op.create_table(
        "prompt_version",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("template_format", sa.String(length=16), nullable=False),
        sa.Column("template", _JSON, nullable=False),
        sa.Column("config", _JSON, nullable=True),
        sa.Column("variables", _JSON, nullable=True),
        sa.Column("placeholders", _JSON, nullable=True),
        sa.Column("commit_message", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        _prompt_fk("prompt_version"),
        sa.PrimaryKeyConstraint("project_id", "name", "version", name=op.f("pk_prompt_version")),
    )
    op.create_table(
        "prompt_label",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("targets", _JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        _prompt_fk("prompt_label"),
        sa.PrimaryKeyConstraint("project_id", "name", "label", name=op.f("pk_prompt_label")),
    )
    op.create_table(
        "prompt_label_event",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_targets", _JSON, nullable=True),
        sa.Column("to_targets", _JSON, nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        _prompt_fk("prompt_label_event"),
        sa.PrimaryKeyConstraint("project_id", "name", "label", "seq", name=op.f("pk_prompt_label_event")),
    )
    op.create_table(
        "prompt_settings",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("protected_labels", _JSON, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_prompt_settings_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_prompt_settings")),
    )
    with op.batch_alter_table("span", schema=None) as batch_op:
        batch_op.create_index(
            "ix_span_prompt",
            ["project_id", "prompt_name", "prompt_version"],
            sqlite_where=sa.text("prompt_name IS NOT NULL"),
            postgresql_where=sa.text("prompt_name IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("span", schema=None) as batch_op:
        batch_op.drop_index("ix_span_prompt")
    op.drop_table("prompt_settings")
    op.drop_table("prompt_label_event")
    op.drop_table("prompt_label")
    op.drop_table("prompt_version")
    op.drop_table("prompt")

"""model registry: registered models, versions, aliases and their history

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["project_id", "name"], ["registered_model.project_id", "registered_model.name"],
                                   name=op.f(f"fk_{table}_project_id_registered_model"), ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", _JSON, nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_registered_model_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_registered_model")),
    )
    op.create_table(
        "model_version",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact", _JSON, nullable=False),
        sa.Column("base_model", sa.String(length=512), nullable=True),
        sa.Column("training_run_id", sa.String(length=64), nullable=True),
        sa.Column("dataset_name", sa.String(length=200), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("eval_results", _JSON, nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        _fk("model_version"),
        sa.PrimaryKeyConstraint("project_id", "name", "version", name=op.f("pk_model_version")),
    )
    op.create_index(op.f("ix_model_version_project_id_dataset_name_dataset_version"), "model_version",
                    ["project_id", "dataset_name", "dataset_version"])
    op.create_table(
        "model_alias",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        _fk("model_alias"),
        sa.PrimaryKeyConstraint("project_id", "name", "alias", name=op.f("pk_model_alias")),
    )
    op.create_table(
        "model_alias_event",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        _fk("model_alias_event"),
        sa.PrimaryKeyConstraint("project_id", "name", "alias", "seq", name=op.f("pk_model_alias_event")),
    )


def downgrade() -> None:
    op.drop_table("model_alias_event")
    op.drop_table("model_alias")
    op.drop_index(op.f("ix_model_version_project_id_dataset_name_dataset_version"), table_name="model_version")
    op.drop_table("model_version")
    op.drop_table("registered_model")

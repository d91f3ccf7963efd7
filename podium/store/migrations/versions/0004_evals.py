"""evals: versioned datasets (items valid for a range of versions), experiments, their items and labels

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import podium.store.types

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = podium.store.types.UtcDateTime(timezone=True)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _fk(table: str, cols: list[str], target: str, target_cols: list[str]) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        cols, [f"{target}.{c}" for c in target_cols], name=op.f(f"fk_{table}_{cols[0]}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "dataset",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("next_position", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        _fk("dataset", ["project_id"], "project", ["id"]),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_dataset")),
    )
    op.create_table(
        "dataset_version",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("source", _JSON, nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        _fk("dataset_version", ["project_id", "name"], "dataset", ["project_id", "name"]),
        sa.PrimaryKeyConstraint("project_id", "name", "version", name=op.f("pk_dataset_version")),
    )
    op.create_table(
        "dataset_item",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("input", _JSON, nullable=True),
        sa.Column("expected", _JSON, nullable=True),
        sa.Column("context", _JSON, nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("labels", _JSON, nullable=True),
        sa.Column("split", sa.String(length=64), nullable=True),
        sa.Column("source_trace_id", sa.String(length=128), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        _fk("dataset_item", ["project_id", "dataset"], "dataset", ["project_id", "name"]),
        sa.PrimaryKeyConstraint("project_id", "dataset", "id", "valid_from", name=op.f("pk_dataset_item")),
    )
    with op.batch_alter_table("dataset_item", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_item_project_id_dataset_valid_from_position"),
            ["project_id", "dataset", "valid_from", "position"],
        )
        batch_op.create_index(
            batch_op.f("ix_dataset_item_project_id_dataset_valid_to"), ["project_id", "dataset", "valid_to"]
        )
    op.create_table(
        "experiment",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dataset_name", sa.String(length=200), nullable=True),
        sa.Column("dataset_version", sa.Integer(), nullable=True),
        sa.Column("run_group", sa.String(length=64), nullable=True),
        sa.Column("task", _JSON, nullable=True),
        sa.Column("scorers", _JSON, nullable=True),
        sa.Column("config", _JSON, nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME, nullable=True),
        _fk("experiment", ["project_id"], "project", ["id"]),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_experiment")),
    )
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_experiment_project_id_created_at"), ["project_id", "created_at"])
        batch_op.create_index(
            batch_op.f("ix_experiment_project_id_name_created_at"), ["project_id", "name", "created_at"]
        )
        batch_op.create_index(batch_op.f("ix_experiment_project_id_run_group"), ["project_id", "run_group"])
    op.create_table(
        "experiment_label",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        _fk("experiment_label", ["project_id", "experiment_id"], "experiment", ["project_id", "id"]),
        sa.PrimaryKeyConstraint("project_id", "experiment_id", "label", name=op.f("pk_experiment_label")),
    )
    with op.batch_alter_table("experiment_label", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_experiment_label_project_id_label"), ["project_id", "label"])
    op.create_table(
        "experiment_item",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("experiment_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=128), nullable=False),
        sa.Column("repetition", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("input", _JSON, nullable=True),
        sa.Column("expected", _JSON, nullable=True),
        sa.Column("context", _JSON, nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("labels", _JSON, nullable=True),
        sa.Column("output", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("trace_id", sa.String(length=128), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("usage", _JSON, nullable=True),
        sa.Column("scores", _JSON, nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("weighted_score", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        _fk("experiment_item", ["project_id", "experiment_id"], "experiment", ["project_id", "id"]),
        sa.PrimaryKeyConstraint(
            "project_id", "experiment_id", "item_id", "repetition", name=op.f("pk_experiment_item")
        ),
    )


def downgrade() -> None:
    op.drop_table("experiment_item")
    with op.batch_alter_table("experiment_label", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_label_project_id_label"))
    op.drop_table("experiment_label")
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_project_id_run_group"))
        batch_op.drop_index(batch_op.f("ix_experiment_project_id_name_created_at"))
        batch_op.drop_index(batch_op.f("ix_experiment_project_id_created_at"))
    op.drop_table("experiment")
    with op.batch_alter_table("dataset_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_item_project_id_dataset_valid_to"))
        batch_op.drop_index(batch_op.f("ix_dataset_item_project_id_dataset_valid_from_position"))
    op.drop_table("dataset_item")
    op.drop_table("dataset_version")
    op.drop_table("dataset")

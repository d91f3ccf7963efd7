"""gateway: key and project limits, API-declared models, persisted spend

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import podium.store.types

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway_limits", _JSON, nullable=True))
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits", _JSON, nullable=True))
        batch_op.add_column(sa.Column("models", _JSON, nullable=True))
    op.create_table(
        "gateway_model",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("created_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_gateway_model_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_gateway_model")),
    )
    op.create_table(
        "gateway_spend",
        sa.Column("scope_kind", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("updated_at", podium.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope_kind", "scope_id", "period", name=op.f("pk_gateway_spend")),
    )


def downgrade() -> None:
    op.drop_table("gateway_spend")
    op.drop_table("gateway_model")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_column("models")
        batch_op.drop_column("limits")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("gateway_limits")

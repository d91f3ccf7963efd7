"""redaction rules applied before storage (issue 16)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redaction_rules",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("rules", _JSON, nullable=False),
        sa.Column("fail_closed", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_redaction_rules_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_redaction_rules")),
    )


def downgrade() -> None:
    op.drop_table("redaction_rules")

"""guardrails: project policies (project.guardrails) and a key's policy (api_key.guardrails)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 16:00:00

``project.guardrails`` is ``{"default": <policy name, "off" or null>, "policies": {name: spec}}``;
``api_key.guardrails`` the name of the policy the key's gateway calls run under ("off": none).
Both are nullable: existing projects and keys keep the gateway config's default.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): no table rebuild on SQLite.
    op.add_column("project", sa.Column("guardrails", _JSON, nullable=True))
    op.add_column("api_key", sa.Column("guardrails", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_column("guardrails")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("guardrails")

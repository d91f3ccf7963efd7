"""span.usage_counted: usage is counted once per actual model call

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:00:00

Existing spans that carry usage are marked counted (failed calls with estimated usage are
not); wrapper spans of existing traces are found when their trace next receives a span.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild on SQLite: spans may be millions of rows).
    op.add_column("span", sa.Column("usage_counted", sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE span SET usage_counted = CASE WHEN usage_estimated = true AND status = 'error' THEN false "
        "ELSE true END WHERE total_tokens IS NOT NULL OR cost_total IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("span", schema=None) as batch_op:
        batch_op.drop_column("usage_counted")

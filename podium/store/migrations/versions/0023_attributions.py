"""context attributions of a trace's answer (issue 17 item 4)

One row per attribution run (leave-one-out or ContextCite) of a generation span's response over
the chunks of the trace's retrieval span; the result (chunks ranked, sentences, surrogate fit) is
one JSON document. Rows go with their trace (foreign key, ON DELETE CASCADE).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attribution",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("trace_id", sa.String(length=128), nullable=False),
        sa.Column("span_id", sa.String(length=128), nullable=False),
        sa.Column("retrieval_span_id", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("top_chunk", sa.String(length=500), nullable=True),
        sa.Column("passes", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("result", _JSON, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "trace_id"], ["trace.project_id", "trace.id"],
                                name=op.f("fk_attribution_project_id_trace"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "id", name=op.f("pk_attribution")),
    )
    op.create_index(op.f("ix_attribution_project_id_trace_id_created_at"), "attribution",
                    ["project_id", "trace_id", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_attribution_project_id_trace_id_created_at"), table_name="attribution")
    op.drop_table("attribution")

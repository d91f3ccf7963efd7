"""knowledge collections: documents, chunks, vector index (issue 17)

Portable tables, plus ``collection_chunk.fts`` (a ``tsvector`` with a GIN index on PostgreSQL, an
unused text column on SQLite). SQLite's FTS5 virtual table ``rag_fts`` and, where the extension is
installed, the pgvector tables ``rag_vec_<dims>`` are created at run time by
podium/store/repos/collections.py (``CREATE ... IF NOT EXISTS``): FTS5 virtual tables and
extension types are outside what tables.py (and the schema comparison test) can describe.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from podium.store.types import UtcDateTime

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("embedder", sa.String(length=200), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("chunking", _JSON, nullable=False),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["project.id"], name=op.f("fk_collection_project_id_project"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_collection")),
    )
    op.create_table(
        "collection_version",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document_count", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "collection"], ["collection.project_id", "collection.name"],
                                name=op.f("fk_collection_version_project_id_collection"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "collection", "version", name=op.f("pk_collection_version")),
    )
    op.create_table(
        "collection_document",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("source", sa.String(length=1000), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("metadata", _JSON, nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id", "collection"], ["collection.project_id", "collection.name"],
                                name=op.f("fk_collection_document_project_id_collection"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "collection", "id", "valid_from", name=op.f("pk_collection_document")),
    )
    op.create_index(op.f("ix_collection_document_project_id_collection_valid_to"), "collection_document",
                    ["project_id", "collection", "valid_to"])
    op.create_table(
        "collection_chunk",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("document_id", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("valid_to", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("heading", sa.String(length=500), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("fts", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(["project_id", "collection"], ["collection.project_id", "collection.name"],
                                name=op.f("fk_collection_chunk_project_id_collection"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "collection", "document_id", "valid_from", "seq",
                                name=op.f("pk_collection_chunk")),
    )
    op.create_index(op.f("ix_collection_chunk_key"), "collection_chunk", ["key"], unique=True)
    op.create_index(op.f("ix_collection_chunk_project_id_collection_valid_to"), "collection_chunk",
                    ["project_id", "collection", "valid_to"])
    op.create_index(op.f("ix_collection_chunk_fts"), "collection_chunk", ["fts"], postgresql_using="gin")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS rag_fts")  # created at run time (repos/collections.py)
    op.drop_index(op.f("ix_collection_chunk_fts"), table_name="collection_chunk")
    op.drop_index(op.f("ix_collection_chunk_project_id_collection_valid_to"), table_name="collection_chunk")
    op.drop_index(op.f("ix_collection_chunk_key"), table_name="collection_chunk")
    op.drop_table("collection_chunk")
    op.drop_index(op.f("ix_collection_document_project_id_collection_valid_to"), table_name="collection_document")
    op.drop_table("collection_document")
    op.drop_table("collection_version")
    op.drop_table("collection")

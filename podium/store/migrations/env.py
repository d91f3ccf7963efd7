"""Alembic environment: runs on the connection handed in by podium.store.migrate."""

from __future__ import annotations

from alembic import context

from podium.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI by hand
    from podium.store.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    connection = engine.connect()

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

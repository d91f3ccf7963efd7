"""Engines: SQLite with the pragmas a concurrent server needs, PostgreSQL via psycopg 3."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["is_sqlite", "make_engine"]

logger = logging.getLogger(__name__)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Build an engine for ``url``; creates the SQLite file's folder if needed."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            u,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL: readers never block the single writer and vice versa.
            cur.execute("PRAGMA journal_mode=WAL")
            # Wait for a lock instead of failing at once (CLI + server on one file).
            cur.execute("PRAGMA busy_timeout=30000")
            # SQLite ignores FOREIGN KEY clauses unless asked per connection.
            cur.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL is durable across application crashes; an OS crash may lose the last commits.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    if u.get_backend_name() == "postgresql" and u.get_driver_name() in ("", "psycopg2"):
        # We ship psycopg 3; accept plain postgresql:// URLs.
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u, pool_size=10, max_overflow=10, pool_pre_ping=True, **kwargs)

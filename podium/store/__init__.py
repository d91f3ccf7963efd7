"""Storage: SQLAlchemy Core over SQLite or PostgreSQL. See README.md in this folder."""

from podium.store.store import Store

__all__ = ["Store"]

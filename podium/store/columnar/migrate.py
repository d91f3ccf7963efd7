"""Versioned migrations of the columnar store: numbered SQL files in ``migrations/``.

``schema_version`` holds one row per applied file (its number, name and when). ``upgrade`` applies
the files above the highest applied number, in order, statement by statement (statements are
separated by a line ending in ``;``). Each statement is idempotent (``IF NOT EXISTS``, ``ADD COLUMN
IF NOT EXISTS``): ClickHouse has no transactional DDL, so a file interrupted half-way is re-run whole.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from podium.store.columnar.client import ColumnarClient

__all__ = ["current_version", "migrations", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations() -> list[tuple[int, str, list[str]]]:
    """``(number, name, statements)`` of every migration file, in order."""
    out = []
    for f in sorted(MIGRATIONS_DIR.iterdir()):
        m = _NAME.match(f.name)
        if not m:
            continue
        text = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("--"))
        statements = [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]
        out.append((int(m.group(1)), m.group(2), statements))
    return out


def _ensure_version_table(client: ColumnarClient) -> None:
    client.command(
        "CREATE TABLE IF NOT EXISTS $db.schema_version (version UInt32, name String, "
        "applied_at DateTime64(6, 'UTC')) ENGINE = MergeTree ORDER BY version"
    )


def current_version(client: ColumnarClient) -> int:
    _ensure_version_table(client)
    rows = client.query("SELECT max(version) FROM $db.schema_version")
    return int(rows[0][0] or 0) if rows else 0


def upgrade(client: ColumnarClient) -> list[int]:
    """Apply the pending migrations; returns their numbers."""
    applied = []
    have = current_version(client)
    for number, name, statements in migrations():
        if number <= have:
            continue
        for stmt in statements:
            # Unqualified table names in the files are this client's database.
            client.command(_qualify(stmt))
        client.insert("schema_version", ["version", "name", "applied_at"],
                      [[number], [name], [datetime.now(UTC)]])
        applied.append(number)
    return applied


_DDL_TABLE = re.compile(
    r"^(CREATE TABLE IF NOT EXISTS|ALTER TABLE|DROP TABLE IF EXISTS|CREATE TABLE)\s+([A-Za-z_][A-Za-z0-9_]*)\b"
)


def _qualify(stmt: str) -> str:
    return _DDL_TABLE.sub(lambda m: f"{m.group(1)} $db.{m.group(2)}", stmt, count=1)

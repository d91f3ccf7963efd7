"""The client seam: one ClickHouse client for a ``PODIUM_CLICKHOUSE_URL``.

- ``clickhouse://[user[:password]@]host[:port][/database]`` (``clickhouses://`` for TLS): a ClickHouse
  server over HTTP through ``clickhouse-connect`` (port 8123 / 8443 by default).
- ``chdb:///path/to/dir[?database=name]`` or ``chdb://:memory:``: the same engine in-process through
  ``chdb`` (its clickhouse-connect backend), for tests and single-node installs.

Both speak the same SQL and return the same Python values, so the repositories above never know
which one they hold. chDB runs one engine per process (one data path): every ``chdb://`` client of a
process shares it, so a second path in the same process is refused with a message saying so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from podium.errors import ConfigurationError

__all__ = ["ColumnarClient", "parse_url"]

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_encode_block = msgspec.json.Encoder().encode
# msgspec writes datetimes as RFC 3339 ("2026-10-01T00:00:00.080000Z"): a server's default ("basic")
# reads only "YYYY-MM-DD hh:mm:ss" (chDB's default is best_effort already).
_INSERT_SETTINGS = {"date_time_input_format": "best_effort"}


@dataclass(frozen=True)
class ColumnarUrl:
    kind: str  # "chdb" or "http"
    database: str
    path: str | None = None  # chdb: a directory, or None for memory
    host: str = "127.0.0.1"
    port: int = 8123
    secure: bool = False
    username: str = "default"
    password: str = ""


def _bad(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"PODIUM_CLICKHOUSE_URL {url!r}: {why}; use clickhouse://user:password@host:8123/database for a "
        "ClickHouse server, or chdb:///path/to/dir (chdb://:memory: for a throwaway one) for the in-process engine"
    )


def parse_url(url: str) -> ColumnarUrl:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "chdb":
        database = query.get("database", ["podium"])[0]
        if not _DB_NAME.match(database):
            raise _bad(url, f"database {database!r} is not a plain identifier")
        if url.startswith("chdb://:memory:"):
            return ColumnarUrl("chdb", database, None)
        if parts.netloc:
            raise _bad(url, "a chdb URL has no host: write chdb:///absolute/path (three slashes)")
        if not parts.path:
            raise _bad(url, "a chdb URL needs a directory")
        return ColumnarUrl("chdb", database, unquote(parts.path))
    if parts.scheme in ("clickhouse", "clickhouses", "http", "https"):
        secure = parts.scheme in ("clickhouses", "https")
        database = (parts.path or "/").strip("/") or query.get("database", ["podium"])[0]
        if not _DB_NAME.match(database):
            raise _bad(url, f"database {database!r} is not a plain identifier")
        if not parts.hostname:
            raise _bad(url, "no host")
        return ColumnarUrl(
            "http",
            database,
            host=parts.hostname,
            port=parts.port or (8443 if secure else 8123),
            secure=secure,
            username=unquote(parts.username) if parts.username else "default",
            password=unquote(parts.password) if parts.password else "",
        )
    raise _bad(url, f"unknown scheme {parts.scheme!r}")


# chDB: one engine per process, shared by every client of that process.
_chdb_lock = threading.Lock()  # opening it
_chdb_run_lock = threading.Lock()  # its statements, one at a time
_chdb_engine: tuple[str | None, Any] | None = None


def _chdb_client(path: str | None, url: str) -> Any:
    global _chdb_engine
    with _chdb_lock:
        if _chdb_engine is not None:
            held, client = _chdb_engine
            if held != path:
                raise _bad(url, f"this process already runs chDB on {held or ':memory:'}; chDB runs one data "
                                "path per process (use ?database=name to keep several stores apart)")
            return client
        try:
            import clickhouse_connect
        except ImportError as e:  # pragma: no cover - the extra is missing
            raise ConfigurationError("the columnar span store needs its extra: pip install 'podium[columnar]'") from e
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}" if path else "chdb://memory")
        _chdb_engine = (path, client)
        return client


class ColumnarClient:
    """A thin, thread-safe wrapper: ``query`` (rows), ``command`` (DDL), ``insert`` (column-oriented
    blocks). Statements write tables as ``$db.span``: the client puts its database there, so several
    stores (databases) can share chDB's one engine in a process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.spec = parse_url(url)
        self.database = self.spec.database
        # chDB's engine is one per process: its statements run one at a time (a lock shared by every
        # client of the process); the HTTP client takes a pooled connection per call.
        self._lock: threading.Lock | None = None
        if self.spec.kind == "chdb":
            self._raw = _chdb_client(self.spec.path, url)
            self._lock = _chdb_run_lock
        else:
            try:
                import clickhouse_connect
            except ImportError as e:  # pragma: no cover - the extra is missing
                raise ConfigurationError("the columnar span store needs its extra: pip install 'podium[columnar]'") from e
            self._raw = clickhouse_connect.get_client(
                host=self.spec.host, port=self.spec.port, username=self.spec.username,
                password=self.spec.password, secure=self.spec.secure, autogenerate_session_id=False,
            )
        self.command("CREATE DATABASE IF NOT EXISTS $db")

    @property
    def kind(self) -> str:
        return self.spec.kind

    def _sql(self, sql: str) -> str:
        return sql.replace("$db", self.database)

    def _run(self, fn: Any, *args: Any, **kw: Any) -> Any:
        if self._lock is None:
            return fn(*args, **kw)
        with self._lock:
            return fn(*args, **kw)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows as tuples (``{name:Type}`` placeholders bound server-side from ``params``)."""
        return list(self._run(self._raw.query, self._sql(sql), parameters=params or None).result_rows)

    def query_dicts(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        res = self._run(self._raw.query, self._sql(sql), parameters=params or None)
        names = res.column_names
        return [dict(zip(names, row, strict=True)) for row in res.result_rows]

    def command(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self._run(self._raw.command, self._sql(sql), parameters=params or None)

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> None:
        """Insert one block from column-oriented ``data`` (one sequence per column).

        The block travels as one ``JSONColumns`` document (``{"column": [values], ...}``) encoded by
        msgspec in one C call, and ClickHouse parses it: about a fifth of the CPU clickhouse-connect's
        Native encoding took in Python (per-value datetime, decimal and string conversion), on chDB and
        on a server alike (docs/columnar.md). Values: str, int, float, bool, None, ``Decimal`` (sent as
        its text), ``datetime`` (RFC 3339; naive means UTC), hence ``date_time_input_format``."""
        if not data or not len(data[0]):
            return
        body = _encode_block(dict(zip(columns, data, strict=True)))
        self._run(self._raw.raw_insert, f"{self.database}.{table}", list(columns), body, settings=_INSERT_SETTINGS,
                  fmt="JSONColumns")

    def drop_database(self) -> None:
        """Drop this client's database (tests, benchmarks)."""
        self.command("DROP DATABASE IF EXISTS $db SYNC")

    def close(self) -> None:
        if self.spec.kind == "http":
            self._raw.close()

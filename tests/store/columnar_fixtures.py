"""Fixtures and seed helpers for the tests that re-run SQL-store tests on the columnar store
(``from tests.store.columnar_fixtures import ...`` in a test module).

chDB runs one data directory per process, so ``chdb_dir`` reuses the directory this process already
opened, or opens one for the module only (see its docstring)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from podium.store import Store
from podium.store.columnar import ColumnarClient, open_columnar
from podium.store.columnar.ingest import _Clock
from tests.governance import lifecycle_seed

CH_TABLES = ("span", "trace", "trace_tag", "score")
_clock = _Clock()


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory chDB runs on in this process: the one already open (tests/store/test_columnar.py
    opens its own for the session), else a new one that is closed again after the module, so that a
    module running later in the process can open its own."""
    from podium.store.columnar import client as ch_client

    held = ch_client._chdb_engine
    if held is not None and held[0]:
        yield Path(held[0])
        return
    path = tmp_path_factory.mktemp("chdb")
    yield path
    with ch_client._chdb_lock:
        held = ch_client._chdb_engine
        if held is not None and held[0] == str(path):
            held[1].close()
            ch_client._chdb_engine = None


@pytest.fixture
def columnar_url(chdb_dir: Path) -> str:
    return f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def columnar(columnar_url: str) -> Iterator[ColumnarClient]:
    client = open_columnar(columnar_url)
    yield client
    client.drop_database()


@pytest.fixture
def store(db_url: str, columnar: ColumnarClient) -> Iterator[Store]:
    from podium.store.engine import make_engine

    s = Store(make_engine(db_url), columnar)
    yield s
    s.engine.dispose()


@pytest.fixture
def sql_store(db_url: str) -> Iterator[Store]:
    s = Store.from_url(db_url, migrate=False)
    yield s
    s.close()


# --- lifecycle_seed's helpers, writing the span store's rows to ClickHouse -----------------------


def _insert(store: Any, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = sorted({c for r in rows for c in r} | ({"version"} if table != "trace_tag" else set()))
    version = _clock.next()
    store.columnar.insert(table, cols, [[r.get(c, version) if c == "version" else r.get(c) for r in rows]
                                        for c in cols])


def ch_add_trace(store: Any, pid: str, tid: str, *, age_days: float, spans: int = 2, user: str | None = None,
                 gateway: bool = False, scores: int = 1, tags: tuple[str, ...] = ("t",)) -> None:
    """``lifecycle_seed.add_trace``, the same rows in ClickHouse."""
    start = lifecycle_seed.ago(age_days)
    _insert(store, "trace", [{
        "project_id": pid, "id": tid, "name": "gateway gpt" if gateway else f"job {tid}", "name_explicit": True,
        "user_id": user, "start_time": start, "span_count": spans, "updated_at": start, "status": "ok",
        "input": json.dumps({"q": f"hello from {user}"})}])
    _insert(store, "span", [
        {"project_id": pid, "trace_id": tid, "id": f"{tid}-s{i}", "parent_id": None if i == 0 else f"{tid}-s0",
         "name": "llm", "kind": "generation", "start_time": start + timedelta(seconds=i), "updated_at": start,
         "status": "unset", "input": json.dumps({"secret": f"{user}-{i}"})}
        for i in range(spans)])
    _insert(store, "score", [
        {"project_id": pid, "id": f"{tid}-sc{i}", "trace_id": tid, "name": "q", "data_type": "numeric",
         "value": 1.0, "source": "api", "timestamp": start} for i in range(scores)])
    _insert(store, "trace_tag", [{"project_id": pid, "trace_id": tid, "tag": tag} for tag in tags])


def ch_add_score(store: Any, pid: str, sid: str, *, age_days: float, trace_id: str | None = None,
                 metadata: dict[str, Any] | None = None, source: str = "api") -> None:
    _insert(store, "score", [{"project_id": pid, "id": sid, "trace_id": trace_id, "session_id": None, "name": "fb",
                              "data_type": "numeric", "value": 1.0, "source": source,
                              "metadata": None if metadata is None else json.dumps(metadata),
                              "timestamp": lifecycle_seed.ago(age_days)}])


def _where(pid: str, eq: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    sql = "project_id = {p:String}"
    params: dict[str, Any] = {"p": pid}
    for i, (k, v) in enumerate(eq.items()):
        sql += f" AND `{k}` = {{v{i}:String}}"
        params[f"v{i}"] = v
    return sql, params


def ch_count(store: Any, table: Any, pid: str, **eq: Any) -> int:
    """``lifecycle_seed.count``: the live rows (FINAL) of the span store's tables, SQL for the rest."""
    if table.name not in CH_TABLES:
        q = select(func.count()).select_from(table).where(table.c.project_id == pid)
        for k, v in eq.items():
            q = q.where(table.c[k] == v)
        with store.engine.connect() as c:
            return int(c.execute(q).scalar_one())
    where, params = _where(pid, eq)
    return int(store.columnar.query(f"SELECT count() FROM $db.{table.name} FINAL WHERE {where}", params)[0][0])


def ch_ids(store: Any, table: Any, pid: str) -> set[str]:
    """The ids of a span-store table's live rows (``_ids`` of tests/governance/test_retention.py)."""
    return {r[0] for r in store.columnar.query(f"SELECT id FROM $db.{table.name} FINAL WHERE project_id = {{p:String}}",
                                               {"p": pid})}


def use_columnar_seed(monkeypatch: pytest.MonkeyPatch, *modules: Any) -> None:
    """Point the SQL tests' seed helpers (imported by name into their modules) at ClickHouse."""
    for mod in modules:
        for name, fn in (("add_trace", ch_add_trace), ("add_score", ch_add_score), ("count", ch_count),
                         ("_ids", ch_ids)):
            if hasattr(mod, name):
                monkeypatch.setattr(mod, name, fn)

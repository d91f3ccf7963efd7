"""The columnar trace list pages by start time through time windows next to the newest trace; a model
filter runs inside each window (the spans of the window's traces, primary-key ranges). Pages must equal
the SQL store's, whatever the filter leaves in each window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.store import Store
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.traces import TraceFilter
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import T0, span


def _batch(pid: str) -> IngestBatch:
    spans: list[Any] = []
    hints: list[Any] = []
    for i in range(120):
        # the model of the trace's generation: rare models sit only in the oldest traces, so the
        # first windows next to the newest trace hold none of them and the windows must widen
        model = "rare" if i < 5 else "gpt-4o" if i % 3 else "claude"
        start = T0 + timedelta(minutes=7 * i)
        spans.append(span(pid, f"t{i:03d}", "root", start_time=start))
        hints.append({"project_id": pid, "id": f"t{i:03d}", "user_id": f"u{i % 4}", "session_id": None,
                      "release": None, "environment": None, "metadata": None, "name": None, "input": None,
                      "output": None})
        spans.append(span(pid, f"t{i:03d}", "gen", parent_id="root", kind="generation", model=model,
                          start_time=start + timedelta(seconds=1)))
    return IngestBatch(spans=spans, traces=hints)


@pytest.mark.parametrize("f", [TraceFilter(model="claude"), TraceFilter(model="rare"),
                               TraceFilter(model="claude", user_id="u1"), TraceFilter(model="none-such")])
def test_model_filter_pages_by_start_time_like_the_sql_store(store: Store, sql_store: Store, f: TraceFilter) -> None:  # noqa: F811
    pid = store.projects.create_project("windows").id
    store.ingest.write(_batch(pid))
    sql_store.ingest.write(_batch(pid))
    orders: tuple[Literal["desc", "asc"], ...] = ("desc", "asc")
    for order in orders:
        pages: dict[str, list[str]] = {}
        for name, s in (("columnar", store), ("sql", sql_store)):
            ids: list[str] = []
            cursor = None
            while True:
                page = s.traces.list_traces(pid, f, order=order, limit=3, cursor=cursor)
                ids += [r["id"] for r in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            pages[name] = ids
        assert pages["columnar"] == pages["sql"], (f, order)
    if f.model == "rare":
        assert pages["sql"] == [f"t{i:03d}" for i in range(5)]

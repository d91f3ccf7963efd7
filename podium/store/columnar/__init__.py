"""The columnar span store: spans, traces, tags and scores on ClickHouse (a server through
clickhouse-connect, or in-process through chDB), everything else in the SQL store.

``open_columnar(url)`` connects and migrates; ``Store(engine, columnar=client)`` then serves
``store.ingest``, ``store.traces``, ``store.scores``, ``store.metrics`` and ``store.dashboard`` from it (docs/columnar.md),
and the span store's part of ``store.lifecycle``, ``store.drift`` and ``store.online_evals``.
"""

from __future__ import annotations

from podium.store.columnar.client import ColumnarClient, parse_url
from podium.store.columnar.dashboard import ColumnarDashboardRepo
from podium.store.columnar.drift import ColumnarDriftRepo
from podium.store.columnar.ingest import ColumnarIngestRepo
from podium.store.columnar.lifecycle import ColumnarLifecycleRepo
from podium.store.columnar.metrics import ColumnarMetricsRepo
from podium.store.columnar.migrate import current_version, upgrade
from podium.store.columnar.online_evals import ColumnarOnlineEvalRepo
from podium.store.columnar.reads import ColumnarScoreRepo, ColumnarTraceRepo

__all__ = [
    "ColumnarClient",
    "ColumnarDashboardRepo",
    "ColumnarDriftRepo",
    "ColumnarIngestRepo",
    "ColumnarLifecycleRepo",
    "ColumnarMetricsRepo",
    "ColumnarOnlineEvalRepo",
    "ColumnarScoreRepo",
    "ColumnarTraceRepo",
    "current_version",
    "open_columnar",
    "parse_url",
    "upgrade",
]


def open_columnar(url: str, *, migrate: bool = True) -> ColumnarClient:
    """A client for ``url`` (``clickhouse://...`` or ``chdb://...``), migrated unless told not to."""
    client = ColumnarClient(url)
    if migrate:
        upgrade(client)
    return client

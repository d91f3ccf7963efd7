"""The columnar span store: spans, traces, tags and scores on ClickHouse (a server through
clickhouse-connect, or in-process through chDB), everything else in the SQL store.

``open_columnar(url)`` connects and migrates; ``Store(engine, columnar=client)`` then serves
``store.ingest``, ``store.traces``, ``store.scores``, ``store.metrics`` and ``store.dashboard`` from it (docs/columnar.md),
and the span store's part of ``store.lifecycle``, ``store.drift``, ``store.online_evals``, ``store.prompts``
(analytics), ``store.annotations``, ``store.evals`` (experiment scores), ``store.canaries``, ``store.models``
(served traffic), ``store.eval_sweeps`` (traffic forecasts) and ``store.guardrails``.
"""

from __future__ import annotations

from podium.store.columnar.annotations import ColumnarAnnotationRepo
from podium.store.columnar.canaries import ColumnarCanaryRepo
from podium.store.columnar.client import ColumnarClient, parse_url
from podium.store.columnar.dashboard import ColumnarDashboardRepo
from podium.store.columnar.drift import ColumnarDriftRepo
from podium.store.columnar.eval_sweeps import ColumnarEvalSweepRepo
from podium.store.columnar.evals import ColumnarEvalRepo
from podium.store.columnar.guardrails import ColumnarGuardrailRepo
from podium.store.columnar.ingest import ColumnarIngestRepo
from podium.store.columnar.lifecycle import ColumnarLifecycleRepo
from podium.store.columnar.metrics import ColumnarMetricsRepo
from podium.store.columnar.migrate import current_version, upgrade
from podium.store.columnar.models import ColumnarModelRepo
from podium.store.columnar.online_evals import ColumnarOnlineEvalRepo
from podium.store.columnar.prompts import ColumnarPromptRepo
from podium.store.columnar.reads import ColumnarScoreRepo, ColumnarTraceRepo

__all__ = [
    "ColumnarAnnotationRepo",
    "ColumnarCanaryRepo",
    "ColumnarClient",
    "ColumnarDashboardRepo",
    "ColumnarDriftRepo",
    "ColumnarEvalRepo",
    "ColumnarEvalSweepRepo",
    "ColumnarGuardrailRepo",
    "ColumnarIngestRepo",
    "ColumnarLifecycleRepo",
    "ColumnarMetricsRepo",
    "ColumnarModelRepo",
    "ColumnarOnlineEvalRepo",
    "ColumnarPromptRepo",
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

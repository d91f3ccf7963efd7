"""Validated wire records -> store rows, with cost filled in from the price table."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from podium.core.pricing import PriceTable, compute_cost
from podium.core.records import ScoreIn, SpanIn, SpanKind, SpanStatus, TraceIn
from podium.core.tokens import estimate_usage
from podium.store.repos.ingest import IngestBatch, ScoreRow, SpanRow, TraceRow
from podium.store.repos.score_configs import ScoreConfigs

__all__ = ["BatchBuilder"]

_PRICED_KINDS = (SpanKind.GENERATION, SpanKind.EMBEDDING)
# Plain str values by member: a dict lookup is ~7x cheaper than the enum's ``.value`` property.
_KIND = {k: k.value for k in SpanKind}
_STATUS = {s: s.value for s in SpanStatus}


class BatchBuilder:
    """Accumulates one request's valid items as store rows for ``project_id``."""

    def __init__(
        self, project_id: str, prices: Callable[[], PriceTable], score_configs: ScoreConfigs | None = None
    ) -> None:
        self.project_id = project_id
        self.batch = IngestBatch()
        self._prices = prices
        self._table: PriceTable | None = None  # looked up once per builder (one request's batch)
        self._score_configs = score_configs  # when given, add_score validates against them

    def add_span(self, s: SpanIn) -> None:
        usage = _fields(s.usage, _USAGE_FIELDS) if s.usage else None
        estimated = False if usage else None
        if (
            not usage
            and s.kind in _PRICED_KINDS
            and s.model
            and (s.input is not None or s.output is not None)
            and s.end_time is not None
            # A failed call may never have reached a model (e.g. a 401): estimate nothing.
            and s.status != SpanStatus.ERROR
        ):
            usage = estimate_usage(s.input, s.output if s.kind == SpanKind.GENERATION else None, model=s.model)
            estimated = True
        if usage and usage.get("total_tokens") is None:
            usage["total_tokens"] = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
        cost = _fields(s.cost, _COST_FIELDS) if s.cost else None
        if not cost and s.model and usage:
            if self._table is None:
                self._table = self._prices()
            cost = compute_cost(s.model, usage, provider=s.provider, table=self._table)
        if cost and cost.get("total") is None:
            cost["total"] = (cost.get("input") or 0.0) + (cost.get("output") or 0.0)
        latency = (s.end_time - s.start_time).total_seconds() * 1000.0 if s.end_time else None
        row: SpanRow = {
            "project_id": self.project_id,
            "trace_id": s.trace_id,
            "id": s.id,
            "parent_id": s.parent_id,
            "name": s.name,
            "kind": _KIND[s.kind],
            "start_time": s.start_time,
            "end_time": s.end_time,
            "latency_ms": latency,
            "status": _STATUS[s.status] if s.status else "unset",
            "status_message": s.status_message,
            "model": s.model,
            "provider": s.provider,
            "model_parameters": s.model_parameters,
            "input": s.input,
            "output": s.output,
            "metadata": s.metadata,
            "attributes": s.attributes,
            "input_tokens": usage.get("input_tokens") if usage else None,
            "output_tokens": usage.get("output_tokens") if usage else None,
            "total_tokens": usage.get("total_tokens") if usage else None,
            "usage_details": usage.get("details") if usage else None,
            "usage_estimated": estimated,
            "cost_input": _money(cost.get("input")) if cost else None,
            "cost_output": _money(cost.get("output")) if cost else None,
            "cost_total": _money(cost.get("total")) if cost else None,
            "completion_start_time": s.completion_start_time,
            "prompt_name": s.prompt_name,
            "prompt_version": s.prompt_version,
            "updated_at": None,
        }
        self.batch.spans.append(row)
        if (
            s.user_id is not None
            or s.session_id is not None
            or s.release is not None
            or s.environment is not None
            or s.trace_metadata is not None
            or s.trace_name is not None
            or s.trace_input is not None
            or s.trace_output is not None
        ):
            hint: TraceRow = {
                "project_id": self.project_id,
                "id": s.trace_id,
                "user_id": s.user_id,
                "session_id": s.session_id,
                "release": s.release,
                "environment": s.environment,
                "metadata": s.trace_metadata,
                "name": s.trace_name,
                "input": s.trace_input,
                "output": s.trace_output,
            }
            self.batch.traces.append(hint)
        if s.tags:
            self.batch.tags.extend((self.project_id, s.trace_id, tag) for tag in s.tags)

    def add_trace(self, tr: TraceIn) -> None:
        row: TraceRow = {
            "project_id": self.project_id,
            "id": tr.id,
            "name": tr.name,
            "user_id": tr.user_id,
            "session_id": tr.session_id,
            "release": tr.release,
            "environment": tr.environment,
            "metadata": tr.metadata,
            "input": tr.input,
            "output": tr.output,
            "start_time": tr.timestamp,
        }
        self.batch.traces.append(row)
        if tr.tags:
            self.batch.tags.extend((self.project_id, tr.id, tag) for tag in tr.tags)

    def add_score(self, sc: ScoreIn) -> str:
        """Add one score; with score configs, raises ValidationFailed (nothing added) when the
        score breaks the config it names or whose name it has."""
        checked = self._score_configs.check(sc) if self._score_configs is not None else None
        sid = sc.id or str(uuid.uuid4())
        numeric = sc.data_type is not None and sc.data_type.value in ("numeric", "boolean")
        data_type = sc.data_type.value if sc.data_type else "numeric"
        value = float(sc.value) if numeric else None
        string_value = None if numeric else str(sc.value)
        if checked is not None:  # a categorical score under a config keeps its label and its number
            data_type, value, string_value = checked.data_type, checked.value, checked.string_value
        row: ScoreRow = {
            "project_id": self.project_id,
            "id": sid,
            "trace_id": sc.trace_id,
            "span_id": sc.span_id,
            "session_id": sc.session_id,
            "name": sc.name,
            "data_type": data_type,
            "value": value,
            "string_value": string_value,
            "source": sc.source,
            "comment": sc.comment,
            "metadata": sc.metadata,
            "timestamp": sc.timestamp or datetime.now(UTC),
        }
        self.batch.scores.append(row)
        return sid


_USAGE_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "details")
_COST_FIELDS = ("input", "output", "total")


def _fields(model: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """``model.model_dump(exclude_none=True)`` for UsageIn / CostIn (flat fields; ``details`` is a
    dict of ints, copied), without pydantic's serializer: it ran once per span."""
    out: dict[str, Any] = {}
    for name in names:
        v = getattr(model, name)
        if v is not None:
            out[name] = dict(v) if isinstance(v, dict) else v
    return out


def _money(v: Any) -> Decimal | None:
    if v is None:
        return None
    return Decimal(str(round(float(v), 10)))

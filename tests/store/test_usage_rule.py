"""Usage is counted once per actual model call (docs/data-model.md), on SQLite and PostgreSQL.

The rule itself (``usage_flags``) as a pure function, then through the ingest writer: spans of
one trace in any order and batch, trace totals, the dashboard's by-model rows and prompt
analytics all see each call once.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from podium.store.repos.dashboard import Bucketing, DashboardRepo
from podium.store.repos.ingest import IngestBatch, usage_flags
from tests.store.test_store import T0, span


def gen(pid: str, trace_id: str, sid: str, tokens: tuple[int, int] | None, *, parent: str | None = None,
        estimated: bool | None = False, status: str = "ok", model: str = "m", cost: float | None = None,
        **kw: Any) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    if tokens is not None:
        usage = {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens),
                 "usage_estimated": estimated,
                 "cost_total": Decimal(str(cost)) if cost is not None else Decimal(str(sum(tokens) / 1000))}
    return span(pid, trace_id, sid, parent_id=parent, kind="generation", model=model, status=status,
                end_time=T0 + timedelta(seconds=1), latency_ms=1000.0, **usage, **kw)


def row(sid: str, parent: str | None, has: bool, *, estimated: bool = False, status: str = "ok",
        counted: bool | None = None, prompt: str | None = None, gateway: bool = False, start: int = 0,
        end: int = 10, tokens: tuple[int, int] = (10, 5)) -> tuple[Any, ...]:
    return ("t", sid, parent, status, estimated, has, counted, prompt, 1 if prompt else None, gateway,
            start, end, *tokens)


# --- the rule, pure ---------------------------------------------------------------------------------------


def test_rule_innermost_usage_counts() -> None:
    # predict (estimated) -> chain (no usage) -> chat (estimated) -> openai call (reported)
    rows = [row("predict", None, True, estimated=True), row("chain", "predict", False),
            row("chat", "chain", True, estimated=True), row("call", "chat", True)]
    changed, linked = usage_flags(rows)
    assert dict(changed) == {"predict": False, "chat": False, "call": True}
    assert linked == []


def test_rule_failed_estimate_never_counts_and_hides_nothing() -> None:
    rows = [row("client", None, True), row("failed", "client", True, estimated=True, status="error")]
    assert dict(usage_flags(rows)[0]) == {"client": True, "failed": False}
    # a failed call with usage its provider reported still counts
    rows = [row("failed", None, True, status="error")]
    assert dict(usage_flags(rows)[0]) == {"failed": True}


def test_rule_writes_only_changes_and_links_prompts() -> None:
    rows = [row("w", None, True, counted=False, prompt="qa"), row("g", "w", True, counted=True),
            row("x", None, False)]
    changed, linked = usage_flags(rows)
    assert changed == [] and linked == [("g", "qa", 1)]


def test_rule_client_span_beside_the_gateway_span_of_the_same_call() -> None:
    # LangChain: ChatOpenAI is never current, so the gateway's span is its sibling.
    rows = [row("chain", None, False), row("client", "chain", True, start=0, end=10, prompt="qa"),
            row("gw", "chain", True, gateway=True, start=2, end=8)]
    changed, linked = usage_flags(rows)
    assert dict(changed) == {"client": False, "gw": True}
    assert linked == [("gw", "qa", 1)]
    # two calls in a row: each gateway span pairs with the client span that was running
    rows = [row("chain", None, False),
            row("c1", "chain", True, start=0, end=10), row("g1", "chain", True, gateway=True, start=1, end=9),
            row("c2", "chain", True, start=20, end=30), row("g2", "chain", True, gateway=True, start=21, end=29)]
    assert dict(usage_flags(rows)[0]) == {"c1": False, "g1": True, "c2": False, "g2": True}
    # a sibling that is another call (other token counts, or not running then) keeps its usage
    rows = [row("chain", None, False), row("other", "chain", True, tokens=(99, 1)),
            row("later", "chain", True, start=50, end=60),
            row("gw", "chain", True, gateway=True, start=2, end=8)]
    assert dict(usage_flags(rows)[0]) == {"other": True, "later": True, "gw": True}
    # a client span with only estimated usage (a stream without usage) is the same call too
    rows = [row("client", None, True, estimated=True, tokens=(12, 7)),
            row("gw", None, True, gateway=True, start=1, end=9)]
    assert dict(usage_flags(rows)[0]) == {"client": False, "gw": True}


def test_rule_survives_cycles_and_missing_parents() -> None:
    rows = [row("a", "b", True), row("b", "a", True), row("c", "not-yet-here", True)]
    flags = dict(usage_flags(rows)[0])
    assert flags["c"] is True and set(flags) == {"a", "b", "c"}


# --- through the writer -----------------------------------------------------------------------------------


def _trace(store: Any, pid: str, tid: str) -> dict[str, Any]:
    return store.traces.get_trace(pid, tid)


def _flags(store: Any, pid: str, tid: str) -> dict[str, Any]:
    return {s["id"]: s["usage_counted"] for s in store.traces.list_spans(pid, tid).items}


def test_wrappers_with_estimated_usage_do_not_count(store: Any) -> None:
    pid = store.projects.create_project("usage-wrappers").id
    spans = [
        span(pid, "t", "root", name="query"),
        gen(pid, "t", "predict", (700, 60), parent="root", estimated=True),
        gen(pid, "t", "chat", (600, 50), parent="predict", estimated=True),
        gen(pid, "t", "call", (146, 8), parent="chat", model="gpt-4o-mini", cost=0.01),
    ]
    store.ingest.write(IngestBatch(spans=spans))
    tr = _trace(store, pid, "t")
    assert (tr["input_tokens"], tr["output_tokens"], tr["total_tokens"]) == (146, 8, 154)
    assert tr["total_cost"] == Decimal("0.01")
    assert _flags(store, pid, "t") == {"root": None, "predict": False, "chat": False, "call": True}
    b = Bucketing.covering(T0 - timedelta(hours=1), T0 + timedelta(hours=1), 3600)
    rows = DashboardRepo(store.engine).by_model(pid, b)["rows"]
    assert [(r["model"], r["calls"], r["total_tokens"]) for r in rows] == [("gpt-4o-mini", 1, 154)]


def test_spans_in_any_order_and_batch(store: Any) -> None:
    pid = store.projects.create_project("usage-order").id
    # the wrapper first, alone: it counts until its child arrives
    store.ingest.write(IngestBatch(spans=[gen(pid, "t", "client", (56, 30), model="local")]))
    assert _trace(store, pid, "t")["total_tokens"] == 86
    # the gateway's own span of the same call, in a later batch
    store.ingest.write(IngestBatch(spans=[gen(pid, "t", "gw", (56, 30), parent="client", model="smollm2")]))
    tr = _trace(store, pid, "t")
    assert (tr["input_tokens"], tr["output_tokens"]) == (56, 30)
    assert _flags(store, pid, "t") == {"client": False, "gw": True}
    # the child first, then the parent, then a retry of the parent's end
    store.ingest.write(IngestBatch(spans=[gen(pid, "t2", "gw", (5, 5), parent="client")]))
    store.ingest.write(IngestBatch(spans=[gen(pid, "t2", "client", (5, 5))]))
    store.ingest.write(IngestBatch(spans=[gen(pid, "t2", "client", (5, 5))]))
    assert _trace(store, pid, "t2")["total_tokens"] == 10
    assert _flags(store, pid, "t2") == {"client": False, "gw": True}


def test_failed_call_with_estimated_usage_counts_nothing(store: Any) -> None:
    pid = store.projects.create_project("usage-failed").id
    store.ingest.write(IngestBatch(spans=[gen(pid, "t", "401", (40, 0), estimated=True, status="error")]))
    tr = _trace(store, pid, "t")
    assert (tr["total_tokens"], tr["total_cost"], tr["status"]) == (0, Decimal("0"), "error")
    assert _flags(store, pid, "t") == {"401": False}


def test_prompt_analytics_count_the_call_once(store: Any) -> None:
    pid = store.projects.create_project("usage-prompts").id
    store.prompts.create_version(pid, "qa", type="text", template="Q: {{q}}", template_format="mustache",
                                 config=None, variables=["q"], placeholders=[], size_bytes=8)
    spans = [
        gen(pid, "t", "client", (56, 30), prompt_name="qa", prompt_version=1, model="local"),
        gen(pid, "t", "gw", (56, 30), parent="client", model="smollm2"),
    ]
    store.ingest.write(IngestBatch(spans=spans))
    (v1,) = store.prompts.analytics(pid, "qa")
    assert (v1["count"], v1["traces"], v1["total_tokens"]) == (1, 1, 86)
    by_prompt = DashboardRepo(store.engine).by_prompt(pid, None, None)
    assert [(r["prompt_name"], r["prompt_version"], r["calls"], r["total_tokens"]) for r in by_prompt] == [
        ("qa", 1, 1, 86)
    ]


def test_session_errors_count_failed_traces(store: Any) -> None:
    pid = store.projects.create_project("usage-sessions").id
    spans = [span(pid, "t", "root", status="error"), span(pid, "t", "child", parent_id="root", status="error"),
             span(pid, "t2", "ok", status="ok")]
    hints = [{"project_id": pid, "id": tid, "session_id": "s1", "user_id": "u1"} for tid in ("t", "t2")]
    store.ingest.write(IngestBatch(spans=spans, traces=hints))
    assert _trace(store, pid, "t")["error_count"] == 2  # spans of the trace
    assert DashboardRepo(store.engine).group_summary(pid, "session_id", "s1")["errors"] == 1
    assert DashboardRepo(store.engine).group_summary(pid, "user_id", "u1")["errors"] == 1
    assert store.traces.list_groups(pid, "session_id").items[0]["error_count"] == 1
    assert DashboardRepo(store.engine).top_groups(pid, "session_id", None, None)[0]["errors"] == 1

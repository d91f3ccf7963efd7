"""The guardrails page's statistics on SQLite and PostgreSQL (run with --db all): decisions
by action, per-rule runs/fired/blocked/errors/timeouts and latency percentiles from the
``podium.guardrail.outcomes`` attribute, false-positive marks, the sample cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from podium.core.pricing import PriceTable
from podium.core.records import ScoreIn, SpanIn
from podium.server.convert import BatchBuilder
from podium.store.repos.guardrails import FALSE_POSITIVE, GuardrailRepo
from tests.conftest import make_project
from tests.ui.guard_seed import allow, guard_batch, injection_block, pii_redact, timeout_flag

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _write(store: Any, pid: str, items: list[dict[str, Any]]) -> None:
    b = BatchBuilder(pid, PriceTable.default)
    for it in items:
        if it["type"] == "span":
            b.add_span(SpanIn.model_validate(it["body"]))
        else:
            b.add_score(ScoreIn.model_validate(it["body"]))
    store.ingest.write(b.batch)


def _seed(store: Any, pid: str) -> None:
    plan = [("b1", injection_block(4.0)), ("b2", injection_block(8.0)), ("r", pii_redact()), ("a1", allow()),
            ("a2", allow()), ("a3", allow()), ("f", timeout_flag())]
    for i, (tid, d) in enumerate(plan):
        _write(store, pid, guard_batch(tid, d, NOW - timedelta(hours=1, minutes=i)))
    # Outside the window, and another project's decision: neither counts.
    _write(store, pid, guard_batch("old", injection_block(), NOW - timedelta(days=3)))
    other = make_project(store, "other")
    _write(store, other.project_id, guard_batch("x", injection_block(), NOW - timedelta(hours=1)))


def test_stats_by_action_and_rule(store: Any) -> None:
    pid = make_project(store, "guarded").project_id
    _seed(store, pid)
    repo = GuardrailRepo(store.engine)
    s = repo.stats(pid, NOW - timedelta(hours=24), NOW)
    assert (s.total, s.sampled, s.capped) == (7, 7, False)
    assert s.actions == {"allow": 3, "warn": 0, "flag": 1, "redact": 1, "block": 2}
    assert abs(s.rates["block"] - 2 / 7) < 1e-9 and abs(s.rates["flag"] - 1 / 7) < 1e-9
    rules = {(r["rule"], r["kind"]): r for r in s.rules}
    inj = rules[("prompt-injection", "input")]
    assert (inj["runs"], inj["fired"], inj["blocked"], inj["errors"], inj["timeouts"]) == (6, 2, 2, 0, 0)
    # Latencies of its six runs: 4, 8 (blocks), 6 (redact), 3, 3, 3 (allows): nearest rank.
    assert inj["p50_ms"] == 3.0 and inj["p95_ms"] == 8.0
    pii = rules[("pii", "input")]
    assert (pii["runs"], pii["fired"], pii["blocked"]) == (6, 1, 0)
    ground = rules[("groundedness", "output")]
    assert (ground["runs"], ground["fired"], ground["timeouts"], ground["p50_ms"]) == (1, 0, 1, 50.0)
    assert rules[("toxicity", "output")]["fired"] == 1
    # Most firings first.
    assert s.rules[0]["rule"] == "prompt-injection"
    # Recent non-allow decisions, newest first, with the rule their reason names.
    assert [(d["trace_id"], d["action"], d["rule"]) for d in s.recent] == [
        ("b1", "block", "prompt-injection"), ("b2", "block", "prompt-injection"), ("r", "redact", "pii"),
        ("f", "flag", "toxicity")]
    assert "instruction override" in s.recent[0]["reason"] and s.recent[0]["policy"] == "default"
    assert s.false_positives == 0 and not any(d["marked"] for d in s.recent)


def test_false_positive_marks_and_the_cap(store: Any) -> None:
    pid = make_project(store, "guarded").project_id
    _seed(store, pid)
    mark = {"name": FALSE_POSITIVE, "value": True, "trace_id": "b2", "span_id": "b2-guard", "source": "human",
            "metadata": {"rule": "prompt-injection"}, "timestamp": (NOW - timedelta(minutes=5)).isoformat()}
    _write(store, pid, [{"type": "score", "body": mark}])
    repo = GuardrailRepo(store.engine)
    s = repo.stats(pid, NOW - timedelta(hours=24), NOW)
    assert s.false_positives == 1
    assert {r["rule"]: r["false_positives"] for r in s.rules}["prompt-injection"] == 1
    assert [d["marked"] for d in s.recent] == [False, True, False, False]
    # A sample smaller than the window: the exact total, the newest decisions, capped.
    c = repo.stats(pid, NOW - timedelta(hours=24), NOW, limit=3)
    assert (c.total, c.sampled, c.capped) == (7, 3, True)
    assert sum(c.actions.values()) == 3 and c.actions["block"] == 2
    # An empty window.
    e = repo.stats(pid, NOW - timedelta(minutes=10), NOW)
    assert (e.total, e.rules, e.recent, e.rates["block"]) == (0, [], [], 0.0)

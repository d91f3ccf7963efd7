"""Guardrail statistics for the web UI: decisions by action, and per rule how often it ran,
fired, blocked, errored or timed out, its latency p50/p95, and how many of its decisions a
person marked wrong.

A decision is a span of kind ``guardrail`` (``podium.guardrails.record``); its rules'
results live in the ``podium.guardrail.outcomes`` attribute, a JSON list. Picking that list
apart in SQL differs between SQLite and PostgreSQL, so the query reads a bounded sample, the
newest :data:`SAMPLE_LIMIT` decisions in the window, and aggregates in Python: the same code
and the same numbers on both databases. The exact number of decisions in the window is
counted in SQL, and ``capped`` says when the sample holds fewer.

False-positive marks are scores named :data:`FALSE_POSITIVE` on the decision's span, with
the rule they blame in their metadata (``{"rule": ...}``), written by the UI's *Mark wrong*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from podium.store import tables as t

__all__ = ["ACTIONS", "FALSE_POSITIVE", "SAMPLE_LIMIT", "GuardrailRepo", "GuardrailStats"]

#: The newest decisions read per window (the per-rule numbers are computed over these).
SAMPLE_LIMIT = 20_000
#: The score a person's *Mark wrong* leaves on a guardrail span.
FALSE_POSITIVE = "guardrail.false_positive"
ACTIONS = ("allow", "warn", "flag", "redact", "block")
_ATTR = "podium.guardrail."


@dataclass
class GuardrailStats:
    """What the guardrails page shows for one window."""

    total: int  # decisions in the window (exact)
    sampled: int  # decisions the numbers below are computed over
    capped: bool  # sampled < total: only the newest SAMPLE_LIMIT were read
    actions: dict[str, int]  # decisions by action, over the sample
    rates: dict[str, float]  # actions / sampled
    rules: list[dict[str, Any]]  # per (rule, scanner, kind): runs, fired, blocked, errors, ...
    recent: list[dict[str, Any]]  # the newest decisions that were not "allow"
    false_positives: int  # marks in the window
    marked: set[tuple[str, str]] = field(default_factory=set)  # (trace_id, span_id) marked wrong


def _pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (as the dashboard's)."""
    if not values:
        return None
    xs = sorted(values)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


class GuardrailRepo:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def stats(self, project_id: str, start: datetime, end: datetime, *, limit: int = SAMPLE_LIMIT,
              recent: int = 50) -> GuardrailStats:
        """The guardrails page's numbers for decisions that started in [start, end)."""
        total, rows, fps = self._decisions(project_id, start, end, limit)
        actions = dict.fromkeys(ACTIONS, 0)
        per_rule: dict[tuple[str, str, str], dict[str, Any]] = {}
        latencies: dict[tuple[str, str, str], list[float]] = {}
        recent_rows: list[dict[str, Any]] = []
        for r in rows:
            attrs = r["attributes"] if isinstance(r["attributes"], dict) else {}
            action = attrs.get(_ATTR + "action")
            action = action if action in actions else ("block" if r["status"] == "error" else "allow")
            actions[action] += 1
            kind = str(attrs.get(_ATTR + "kind") or r["name"].rsplit(".", 1)[-1])
            outcomes = attrs.get(_ATTR + "outcomes")
            outcomes = [o for o in outcomes if isinstance(o, dict)] if isinstance(outcomes, list) else []
            for o in outcomes:
                key = (str(o.get("rule") or o.get("scanner") or "?"), str(o.get("scanner") or "?"), kind)
                row = per_rule.get(key)
                if row is None:
                    row = per_rule[key] = {"rule": key[0], "scanner": key[1], "kind": kind, "runs": 0, "fired": 0,
                                           "blocked": 0, "errors": 0, "timeouts": 0, "false_positives": 0}
                    latencies[key] = []
                row["runs"] += 1
                act = o.get("action")
                if act not in (None, "none"):
                    row["fired"] += 1
                if act == "block":
                    row["blocked"] += 1
                if o.get("verdict") == "error":
                    row["errors"] += 1
                elif o.get("verdict") == "timeout":
                    row["timeouts"] += 1
                ms = _num(o.get("latency_ms"))
                if ms is not None:
                    latencies[key].append(ms)
            if action != "allow" and len(recent_rows) < recent:
                output = r["output"] if isinstance(r["output"], dict) else {}
                blamed = attrs.get(_ATTR + "blocked_by") or next(
                    (o.get("rule") for o in outcomes if o.get("action") not in (None, "none")), None)
                recent_rows.append({
                    "trace_id": r["trace_id"], "span_id": r["id"], "name": r["name"], "start_time": r["start_time"],
                    "kind": kind, "action": action, "policy": attrs.get(_ATTR + "policy"), "rule": blamed,
                    "reason": output.get("reason"), "marked": (r["trace_id"], r["id"]) in fps,
                })
        fp_rules: dict[str, int] = {}
        for rule in fps.values():
            fp_rules[rule] = fp_rules.get(rule, 0) + 1
        rules = []
        for key, row in per_rule.items():
            row["p50_ms"] = _pct(latencies[key], 0.50)
            row["p95_ms"] = _pct(latencies[key], 0.95)
            row["fire_rate"] = row["fired"] / row["runs"] if row["runs"] else 0.0
            rules.append(row)
        # A rule's marks count once, on its first row (a rule named the same on input and output
        # is two rows; the mark names the rule, not the side).
        for row in sorted(rules, key=lambda x: (x["kind"] != "input", x["rule"])):
            row["false_positives"] = fp_rules.pop(row["rule"], 0)
        rules.sort(key=lambda x: (-x["fired"], -x["runs"], x["rule"], x["kind"]))
        sampled = len(rows)
        return GuardrailStats(
            total=total, sampled=sampled, capped=sampled < total, actions=actions,
            rates={a: (n / sampled if sampled else 0.0) for a, n in actions.items()}, rules=rules,
            recent=recent_rows, false_positives=len(fps), marked=set(fps),
        )

    def _decisions(self, project_id: str, start: datetime, end: datetime, limit: int
                   ) -> tuple[int, list[dict[str, Any]], dict[tuple[str, str], str]]:
        """What ``stats`` reads from the span store: the number of decisions in ``[start, end)``, the
        newest ``limit`` of them (trace_id, id, name, start_time, status, output, attributes) and the
        false-positive marks since ``start`` (the columnar store reads the same from ClickHouse)."""
        s = t.span.c
        where = (s.project_id == project_id, s.kind == "guardrail", s.start_time >= start, s.start_time < end)
        stmt = (select(s.trace_id, s.id, s.name, s.start_time, s.status, s.output, s.attributes)
                .where(*where).order_by(s.start_time.desc(), s.id.desc()).limit(limit))
        with self._engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(t.span).where(*where)).scalar() or 0)
            rows = [dict(r._mapping) for r in conn.execute(stmt)] if total else []
            fps = self._false_positives(conn, project_id, start)
        return total, rows, fps

    @staticmethod
    def _false_positives(conn: Any, project_id: str, start: datetime) -> dict[tuple[str, str], str]:
        """``{(trace_id, span_id): rule}`` for the marks made since ``start`` (newest 10,000)."""
        sc = t.score.c
        stmt = (select(sc.trace_id, sc.span_id, sc.metadata)
                .where(sc.project_id == project_id, sc.name == FALSE_POSITIVE, sc.timestamp >= start,
                       sc.value > 0)
                .order_by(sc.timestamp.desc()).limit(10_000))
        out: dict[tuple[str, str], str] = {}
        for r in conn.execute(stmt):
            if r.trace_id is None or r.span_id is None:
                continue
            meta = r.metadata if isinstance(r.metadata, dict) else {}
            out.setdefault((r.trace_id, r.span_id), str(meta.get("rule") or "?"))
        return out

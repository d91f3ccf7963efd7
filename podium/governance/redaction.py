"""Redaction before storage: a project's rules applied to every item before it is written.

Every ingestion path (native ``/api/v1/ingest``, OTLP over HTTP and gRPC, the Langfuse-compatible
API, scores and feedback, the gateway's own log of its calls, guard scans) builds an
:class:`~podium.store.repos.ingest.IngestBatch` and hands it to the server's ingest queue; the
queue calls :meth:`Redactor.redact_batch` on it, in a worker thread, before the batch is queued
for the writer. So one rule set, in one place, sees everything before it reaches the database.

What is read: spans' name, status message, input, output, metadata, attributes and model
parameters; traces' name, input, output and metadata; scores' comment, string value and
metadata; trace tags (:data:`~podium.governance.redaction_rules.FIELDS`). Identifiers (trace,
span, user and session ids, release, environment, model names) and object keys are never
rewritten. Text rules rewrite every string (and every integer of six digits or more) in those
fields; path rules replace what the path reaches, whatever its type.

When a value cannot be redacted (a rule raised, its scanner is not installed, the value is
longer than the rule's ``max_chars``):

- fail-open (the default): the rule is skipped for that value, the value is stored as the other
  rules left it, ``failures`` is counted (``/api/v1/health`` under ``ingest.redaction``) and a
  warning is logged (at most once a minute per project and rule; it names the rule and the
  field, never the value). Chosen as the default so that a scanner outage cannot silently drop
  a project's traces;
- fail-closed (``fail_closed: true``): the item (the span, trace or score) is rejected with a
  per-item error naming the rule; the batch's other items are stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from podium.core.ttlcache import TTLCache
from podium.governance.redaction_rules import (
    FIELDS,
    SCORE_FIELDS,
    SPAN_FIELDS,
    TRACE_FIELDS,
    RuleSet,
    Segment,
    TextRule,
    compile_rules,
)
from podium.store.repos.ingest import IngestBatch, ScoreRow, SpanRow, TraceRow
from podium.store.repos.redaction import RedactionRepo

__all__ = ["CACHE_TTL", "Redactor", "Rejected", "Unredactable", "preview"]

logger = logging.getLogger("podium.redaction")

#: Seconds another server process may keep applying rules changed elsewhere (this process drops
#: its copy at once on a change).
CACHE_TTL = 10.0
#: Integers at least this large (in absolute value) are scanned by text rules as their digits.
_BIG_INT = 100_000
_WARN_EVERY = 60.0

#: An item refused: (("span", trace_id, id) | ("trace", id) | ("score", id), message): the ingest
#: queue's shape.
Rejected = tuple[tuple[str, ...], str]


class Unredactable(Exception):
    """A value that a rule could not redact, under a fail-closed rule set. The message names the
    field and the rule, never the value."""


@dataclass
class _Report:
    """What one pass changed and what it could not do."""

    fail_closed: bool
    redacted: int = 0
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (rule index, field, why)


# --- values ----------------------------------------------------------------------------------------------


def _fail(index: int, label: str, fld: str, why: str, report: _Report) -> None:
    if report.fail_closed:
        raise Unredactable(f"could not redact {fld}: rules[{index}] ({label}) {why}; this project's redaction "
                           "is fail-closed, so the item was not stored (fix the rule or raise its max_chars, then "
                           "resend)")
    report.failures.append((index, fld, why))


def _text(s: str, rules: tuple[TextRule, ...], fld: str, report: _Report) -> str:
    out = s
    for r in rules:
        if r.max_chars is not None and len(out) > r.max_chars:
            _fail(r.index, r.label, fld, f"skips values over max_chars {r.max_chars} (this one has {len(out)})",
                  report)
            continue
        try:
            out = r.apply(out)
        except Exception as e:
            why = r.unavailable or f"failed ({type(e).__name__})"
            _fail(r.index, r.label, fld, why, report)
    if out != s:
        report.redacted += 1
    return out


def _walk(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string (copy on write: untouched containers are
    returned as they are)."""
    if isinstance(value, str):
        return fn(value) if value else value
    if isinstance(value, dict):
        changed: dict[Any, Any] | None = None
        for k, v in value.items():
            nv = _walk(v, fn)
            if nv is not v:
                if changed is None:
                    changed = dict(value)
                changed[k] = nv
        return value if changed is None else changed
    if isinstance(value, list):
        out: list[Any] | None = None
        for i, v in enumerate(value):
            nv = _walk(v, fn)
            if nv is not v:
                if out is None:
                    out = list(value)
                out[i] = nv
        return value if out is None else out
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _BIG_INT:
        digits = str(value)
        new = fn(digits)
        return value if new == digits else new
    return value


def _path(node: Any, segs: tuple[Segment, ...], i: int, repl: str, report: _Report) -> Any:
    """``node`` with what ``segs[i:]`` reaches replaced by ``repl`` (copy on write)."""
    if i == len(segs):
        report.redacted += 1
        return repl
    if isinstance(node, str):
        if node[:1] not in ("{", "[") and node.lstrip()[:1] not in ("{", "["):
            return node
        try:
            parsed = json.loads(node)
        except ValueError:
            return node
        if not isinstance(parsed, dict | list):
            return node
        new = _path(parsed, segs, i, repl, report)
        return node if new is parsed else json.dumps(new, ensure_ascii=False)
    kind, arg = segs[i]
    if kind == "key":
        if isinstance(node, dict) and arg in node:
            child = node[arg]
            nv = _path(child, segs, i + 1, repl, report)
            if nv is not child:
                node = dict(node)
                node[arg] = nv
        return node
    if kind == "index":
        if isinstance(node, list) and arg < len(node):
            child = node[arg]
            nv = _path(child, segs, i + 1, repl, report)
            if nv is not child:
                node = list(node)
                node[arg] = nv
        return node
    if kind == "any":
        return _children(node, lambda c: _path(c, segs, i + 1, repl, report))
    # deep: match here (zero levels), then at every level below
    here = _path(node, segs, i + 1, repl, report)
    if isinstance(here, str) and here is not node:
        return here
    return _children(here, lambda c: _path(c, segs, i, repl, report))


def _children(node: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(node, dict):
        changed: dict[Any, Any] | None = None
        for k, v in node.items():
            nv = fn(v)
            if nv is not v:
                if changed is None:
                    changed = dict(node)
                changed[k] = nv
        return node if changed is None else changed
    if isinstance(node, list):
        out: list[Any] | None = None
        for j, v in enumerate(node):
            nv = fn(v)
            if nv is not v:
                if out is None:
                    out = list(node)
                out[j] = nv
        return node if out is None else out
    return node


def _redact_value(rs: RuleSet, fld: str, value: Any, report: _Report) -> Any:
    if value is None or value == "":
        return value
    new = value
    for pr in rs.paths.get(fld, ()):
        new = _path(new, pr.segments, 0, pr.replacement, report)
    rules = rs.texts_for(fld)
    if rules:
        new = _walk(new, lambda s: _text(s, rules, fld, report))
    return new


_Row = TypeVar("_Row", TraceRow, SpanRow, ScoreRow)


def redact_fields(rs: RuleSet, row: Any, fields: tuple[str, ...], report: _Report) -> None:
    """Rewrite ``row``'s ``fields`` in place (raises Unredactable under fail-closed)."""
    for f in fields:
        v = row.get(f)
        if v is None:
            continue
        nv = _redact_value(rs, f, v, report)
        if nv is not v:
            row[f] = nv


# --- batches ----------------------------------------------------------------------------------------------


class Redactor:
    """The server's redaction step: per-project compiled rules (cached ``ttl`` seconds, dropped at
    once by :meth:`invalidate`), applied to ingest batches, with counters."""

    def __init__(self, repo: RedactionRepo, *, ttl: float = CACHE_TTL) -> None:
        self._repo = repo
        self._cache: TTLCache[RuleSet] = TTLCache(ttl, max_entries=10_000)
        self._lock = threading.Lock()
        self._warned: dict[tuple[str, int], float] = {}
        self.redacted = 0  # values rewritten
        self.failures = 0  # values a rule could not redact, stored anyway (fail-open)
        self.rejected = 0  # items refused (fail-closed)
        self.batches = 0  # batches that had rules to apply

    def stats(self) -> dict[str, int]:
        return {"redacted_values": self.redacted, "failures": self.failures, "rejected_items": self.rejected,
                "batches": self.batches}

    def _load(self, project_id: str) -> RuleSet:
        doc = self._repo.get(project_id)
        try:
            return compile_rules(doc)
        except Exception:  # a stored document that no longer compiles (edited by hand, an upgrade)
            logger.exception("redaction rules of project %s do not compile; every value counts as a failure",
                             project_id)
            return _broken(bool(doc and doc.get("fail_closed")))

    def rules_for(self, project_id: str) -> RuleSet:
        """The project's compiled rules (a query per ``ttl`` at most; call off the event loop)."""
        rs = self._cache.load(project_id, lambda: self._load(project_id))
        return rs if rs is not None else RuleSet()

    def invalidate(self, project_id: str) -> None:
        self._cache.invalidate(project_id)

    def needed(self, batch: IngestBatch) -> bool:
        """False only when every project of the batch is known (cached) to have no rules: then
        the event loop skips the worker thread. Cheap: a dict lookup per project."""
        seen: set[str] = set()
        for rows in (batch.spans, batch.traces, batch.scores):
            for r in rows:
                pid = r["project_id"]
                if pid not in seen:
                    seen.add(pid)
                    cached = self._cache.peek(pid)
                    if not isinstance(cached, RuleSet) or not cached.empty:
                        return True
        return any(tg[0] not in seen for tg in batch.tags)

    def redact_batch(self, batch: IngestBatch) -> tuple[IngestBatch, list[Rejected]]:
        """Apply each project's rules to ``batch`` (rows rewritten in place). Returns the batch to
        write (``batch`` itself unless items were rejected) and the rejected items."""
        rejected: list[Rejected] = []
        rulesets: dict[str, RuleSet] = {}

        def rules(pid: str) -> RuleSet:
            rs = rulesets.get(pid)
            if rs is None:
                rs = rulesets[pid] = self.rules_for(pid)
            return rs

        reports: dict[str, _Report] = {}

        def report(pid: str, rs: RuleSet) -> _Report:
            rp = reports.get(pid)
            if rp is None:
                rp = reports[pid] = _Report(rs.fail_closed)
            return rp

        def redact_rows(rows: list[_Row], fields: tuple[str, ...], on_error: Callable[[_Row, str], None]) -> list[_Row]:
            kept: list[_Row] = []
            for row in rows:
                rs = rules(row["project_id"])
                if not rs.empty:
                    try:
                        redact_fields(rs, row, fields, report(row["project_id"], rs))
                    except Unredactable as e:
                        on_error(row, str(e))
                        continue
                kept.append(row)
            return kept

        bad_traces: dict[tuple[str, str], str] = {}
        traces = redact_rows(batch.traces, TRACE_FIELDS,
                             lambda tr, msg: bad_traces.__setitem__((tr["project_id"], tr["id"]), msg))
        tags = []
        for tg in batch.tags:
            rs = rules(tg[0])
            if rs.empty or not rs.texts_for("tags"):
                tags.append(tg)
                continue
            try:
                new = _redact_value(rs, "tags", tg[2], report(tg[0], rs))
                tags.append((tg[0], tg[1], new) if new != tg[2] else tg)
            except Unredactable as e:
                bad_traces.setdefault((tg[0], tg[1]), str(e))
        live = batch.spans
        if bad_traces:
            traces = [t for t in traces if (t["project_id"], t["id"]) not in bad_traces]
            tags = [t for t in tags if (t[0], t[1]) not in bad_traces]
            rejected.extend((("trace", tid), msg) for (_, tid), msg in bad_traces.items())
            live = []
            for sp in batch.spans:
                bad = bad_traces.get((sp["project_id"], sp["trace_id"]))
                if bad is None:
                    live.append(sp)
                else:
                    rejected.append((("span", sp["trace_id"], sp["id"]), "not stored: " + bad))
        spans = redact_rows(live, SPAN_FIELDS,
                            lambda sp, msg: rejected.append((("span", sp["trace_id"], sp["id"]), msg)))
        scores = redact_rows(batch.scores, SCORE_FIELDS, lambda sc, msg: rejected.append((("score", sc["id"]), msg)))
        self._account(reports, rulesets, len(rejected))
        if not rejected:
            batch.tags = tags  # tags are tuples: rewritten ones are new
            return batch, []
        return IngestBatch(spans=spans, traces=traces, tags=tags, scores=scores), rejected

    def _account(self, reports: dict[str, _Report], rulesets: dict[str, RuleSet], rejected: int) -> None:
        now = time.monotonic()
        with self._lock:
            if reports:
                self.batches += 1
            self.rejected += rejected
            for pid, rp in reports.items():
                self.redacted += rp.redacted
                self.failures += len(rp.failures)
                for index, fld, why in rp.failures:
                    if now - self._warned.get((pid, index), -_WARN_EVERY) >= _WARN_EVERY:
                        self._warned[(pid, index)] = now
                        logger.warning(
                            "redaction (fail-open) in project %s: rules[%d] could not redact a value of %s (%s); "
                            "it was stored as the other rules left it. Set fail_closed: true to reject such items "
                            "instead (docs/governance.md#redaction)", pid, index, fld, why)
        if rejected:
            logger.warning("redaction (fail-closed) rejected %d items", rejected)


def _broken(fail_closed: bool) -> RuleSet:
    def apply(_text: str) -> str:
        raise RuntimeError("the stored rules do not compile")

    rule = TextRule(0, "stored rules", None, None, apply, unavailable="the stored rules do not compile; set them again")
    return RuleSet(fail_closed, {}, (rule,), (), {f: (rule,) for f in FIELDS})


# --- dry run ------------------------------------------------------------------------------------------------


def preview(rs: RuleSet, sample: dict[str, Any]) -> dict[str, Any]:
    """What ``sample`` (an object keyed by stored field: ``input``, ``output``, ``metadata``,
    ``attributes``, ``comment``, ``tags``...) becomes under ``rs``: ``redacted`` (the sample
    rewritten), ``changes`` (values rewritten), ``failures`` (rule, field, why: stored anyway),
    ``rejected`` (the message an item would be refused with under fail-closed, or None) and
    ``ignored_fields`` (keys redaction never reads)."""
    report = _Report(rs.fail_closed)
    out = dict(sample)
    rejected = None
    fields = tuple(f for f in FIELDS if f in sample)
    try:
        for f in fields:
            if f == "tags" and isinstance(sample[f], list):
                out[f] = [_redact_value(rs, "tags", t, report) if isinstance(t, str) else t for t in sample[f]]
            else:
                out[f] = _redact_value(rs, f, sample[f], report)
    except Unredactable as e:
        rejected = str(e)
    return {
        "redacted": out if rejected is None else None,
        "changes": report.redacted,
        "failures": [{"rule": i, "field": f, "reason": why} for i, f, why in report.failures],
        "rejected": rejected,
        "ignored_fields": sorted(k for k in sample if k not in FIELDS),
    }

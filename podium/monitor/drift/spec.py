"""What a drift monitor is made of, checked once (the API, the UI and the runner share it).

- ``scope``: ``{"filter": {<trace filters>}, "span_kind": "generation", "span_name": "chat"}``:
  which traces (the trace list's filters, without ``from``/``to``: the windows set the times),
  and optionally which of their spans carry the texts (else the trace's input and output).
- ``reference``: ``{"kind": "rolling", "length_s": 604800, "gap_s": 0}`` (the ``length_s``
  before the current window, less ``gap_s``), ``{"kind": "fixed", "start": iso, "end": iso}``
  or ``{"kind": "dataset", "dataset": "golden"}`` (a dataset's items: input and expected).
- ``features``: any of :data:`FEATURES` and ``score:<name>`` (a numeric score on the traces).
- ``thresholds``: ``p_value`` (0.01: a test fires below it), ``embedding_auc`` (0.55: and the
  classifier AUC must reach it), ``min_samples`` (30 per window, else the run is
  ``insufficient``), ``new_topic_min_share`` (0.03 of the window).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.errors import ValidationFailed
from podium.store.repos.traces import TraceFilter

__all__ = [
    "DEFAULT_FEATURES", "DEFAULT_THRESHOLDS", "FEATURES", "MAX_SAMPLE", "check_monitor", "parse_time", "to_filter",
]

FEATURES = ("input_embedding", "output_embedding", "input_length", "output_length", "input_language",
            "output_language", "input_topics", "output_topics")
DEFAULT_FEATURES = ["input_embedding", "output_embedding", "input_length", "output_length", "input_language",
                    "input_topics"]
DEFAULT_THRESHOLDS: dict[str, float] = {"p_value": 0.01, "embedding_auc": 0.55, "min_samples": 30,
                                        "new_topic_min_share": 0.03}
#: Texts per window at most (a run embeds at most twice this many).
MAX_SAMPLE = 2000
_FILTER_TEXT = ("name", "q", "user_id", "session_id", "status", "model", "environment", "release", "score_name")
_FILTER_NUM = ("min_latency_ms", "max_latency_ms", "min_cost", "max_cost", "min_score", "max_score")


def _bad(field: str, message: str, fix: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}; {fix}", details=[{"field": field, "message": message}])


def parse_time(v: Any, field: str) -> datetime:
    if isinstance(v, datetime):
        d = v
    else:
        try:
            d = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
        except ValueError:
            raise _bad(field, f"{v!r} is not an ISO 8601 time", 'send e.g. "2026-01-31T00:00:00Z"') from None
    if d.tzinfo is None:
        raise _bad(field, "the time has no timezone", 'add one, e.g. "Z" for UTC')
    return d


def to_filter(scope: dict[str, Any] | None) -> TraceFilter:
    """The scope's trace filter (already checked by :func:`check_monitor`)."""
    f = (scope or {}).get("filter") or {}
    tags = f.get("tags") or []
    return TraceFilter(tags=[tags] if isinstance(tags, str) else list(tags),
                       **{k: f[k] for k in (*_FILTER_TEXT, *_FILTER_NUM) if f.get(k) is not None})


def _check_scope(scope: Any) -> dict[str, Any]:
    if scope is None:
        return {"filter": {}}
    if not isinstance(scope, dict):
        raise _bad("scope", "must be an object", 'send {"filter": {"environment": "prod"}}')
    unknown = set(scope) - {"filter", "span_kind", "span_name"}
    if unknown:
        raise _bad("scope", f"unknown key(s) {sorted(unknown)}", "use filter, span_kind and span_name")
    f = scope.get("filter") or {}
    if not isinstance(f, dict):
        raise _bad("scope.filter", "must be an object of trace filters", 'send {"environment": "prod"}')
    known = {*_FILTER_TEXT, *_FILTER_NUM, "tags"}
    bad = set(f) - known
    if bad:
        raise _bad("scope.filter", f"unknown trace filter(s) {sorted(bad)}",
                   f"filters: {', '.join(sorted(known))} (the windows set the times)")
    for k in _FILTER_TEXT:
        if f.get(k) is not None and (not isinstance(f[k], str) or len(f[k]) > 1000):
            raise _bad(f"scope.filter.{k}", "must be a string (at most 1000 characters)", "send a string")
    for k in _FILTER_NUM:
        if f.get(k) is not None and (isinstance(f[k], bool) or not isinstance(f[k], int | float)):
            raise _bad(f"scope.filter.{k}", "must be a number", "send a number")
    tags = f.get("tags")
    if tags is not None and not (isinstance(tags, list) and len(tags) <= 20
                                 and all(isinstance(x, str) and len(x) <= 200 for x in tags)):
        raise _bad("scope.filter.tags", "must be a list of at most 20 strings", 'send ["checkout"]')
    if f.get("status") not in (None, "ok", "error"):
        raise _bad("scope.filter.status", "must be ok or error", 'send "ok" or "error"')
    out: dict[str, Any] = {"filter": {k: v for k, v in f.items() if v is not None}}
    for k in ("span_kind", "span_name"):
        v = scope.get(k)
        if v is not None:
            if not isinstance(v, str) or not v or len(v) > 1000:
                raise _bad(f"scope.{k}", "must be a non-empty string", "send e.g. span_kind \"generation\"")
            out[k] = v
    return out


def _check_reference(ref: Any, window_s: int) -> dict[str, Any]:
    if ref is None:
        return {"kind": "rolling", "length_s": 7 * 86400, "gap_s": 0}
    if not isinstance(ref, dict):
        raise _bad("reference", "must be an object", 'send {"kind": "rolling", "length_s": 604800}')
    kind = ref.get("kind")
    if kind == "rolling":
        unknown = set(ref) - {"kind", "length_s", "gap_s"}
        length, gap = ref.get("length_s", 7 * 86400), ref.get("gap_s", 0)
        for name, v in (("length_s", length), ("gap_s", gap)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > 366 * 86400:
                raise _bad(f"reference.{name}", "must be a whole number of seconds (0 to 366 days)",
                           "send e.g. 604800 for 7 days")
        if length < 60:
            raise _bad("reference.length_s", "is under a minute", "send at least 60 (seconds)")
        if unknown:
            raise _bad("reference", f"unknown key(s) {sorted(unknown)}", "a rolling reference takes length_s, gap_s")
        return {"kind": "rolling", "length_s": length, "gap_s": gap}
    if kind == "fixed":
        unknown = set(ref) - {"kind", "start", "end"}
        if unknown:
            raise _bad("reference", f"unknown key(s) {sorted(unknown)}", "a fixed reference takes start and end")
        start, end = parse_time(ref.get("start"), "reference.start"), parse_time(ref.get("end"), "reference.end")
        if end <= start:
            raise _bad("reference.end", "is not after start", "swap them")
        return {"kind": "fixed", "start": start.isoformat(), "end": end.isoformat()}
    if kind == "dataset":
        unknown = set(ref) - {"kind", "dataset"}
        ds = ref.get("dataset")
        if unknown:
            raise _bad("reference", f"unknown key(s) {sorted(unknown)}", "a dataset reference takes dataset")
        if not isinstance(ds, str) or not ds or len(ds) > 200:
            raise _bad("reference.dataset", "must name a dataset", 'send {"kind": "dataset", "dataset": "golden"}')
        return {"kind": "dataset", "dataset": ds}
    raise _bad("reference.kind", f"{kind!r} is not a reference kind", "use rolling, fixed or dataset")


def _check_features(features: Any) -> list[str]:
    if features is None:
        return list(DEFAULT_FEATURES)
    if not isinstance(features, list) or not features or len(features) > 30:
        raise _bad("features", "must be a list of 1 to 30 features", f"pick from {', '.join(FEATURES)}, score:<name>")
    out: list[str] = []
    for x in features:
        ok = isinstance(x, str) and (x in FEATURES or (x.startswith("score:") and 0 < len(x) - 6 <= 256))
        if not ok:
            raise _bad("features", f"{x!r} is not a feature", f"pick from {', '.join(FEATURES)}, score:<name>")
        if x not in out:
            out.append(x)
    return out


def _check_thresholds(th: Any) -> dict[str, float]:
    if th is None:
        return dict(DEFAULT_THRESHOLDS)
    if not isinstance(th, dict):
        raise _bad("thresholds", "must be an object", 'send {"p_value": 0.01}')
    unknown = set(th) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise _bad("thresholds", f"unknown key(s) {sorted(unknown)}", f"use {', '.join(DEFAULT_THRESHOLDS)}")
    out = dict(DEFAULT_THRESHOLDS)
    limits = {"p_value": (1e-12, 0.5), "embedding_auc": (0.5, 1.0), "min_samples": (5, MAX_SAMPLE),
              "new_topic_min_share": (0.0, 1.0)}
    for k, v in th.items():
        lo, hi = limits[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not (lo <= v <= hi):
            raise _bad(f"thresholds.{k}", f"must be a number from {lo} to {hi}", f"send e.g. {DEFAULT_THRESHOLDS[k]}")
        out[k] = float(v)
    return out


def check_monitor(fields: dict[str, Any]) -> dict[str, Any]:
    """A monitor's fields, complete and consistent (defaults filled in), or ValidationFailed."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise _bad("name", "must be 1 to 200 characters", 'send e.g. "support-bot inputs"')
    window_s = fields.get("window_s", 86400)
    if isinstance(window_s, bool) or not isinstance(window_s, int) or not (60 <= window_s <= 90 * 86400):
        raise _bad("window_s", "must be whole seconds from 60 to 90 days", "send e.g. 86400 for a day")
    interval_s = fields.get("interval_s", 3600)
    if isinstance(interval_s, bool) or not isinstance(interval_s, int) or not (60 <= interval_s <= 90 * 86400):
        raise _bad("interval_s", "must be whole seconds from 60 to 90 days", "send e.g. 3600 for hourly")
    sample = fields.get("sample_size", 1000)
    if isinstance(sample, bool) or not isinstance(sample, int) or not (10 <= sample <= MAX_SAMPLE):
        raise _bad("sample_size", f"must be from 10 to {MAX_SAMPLE}", "send e.g. 1000")
    desc = fields.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 10_000):
        raise _bad("description", "must be a string of at most 10,000 characters", "shorten it")
    return {"name": name.strip(), "description": desc, "scope": _check_scope(fields.get("scope")),
            "reference": _check_reference(fields.get("reference"), window_s), "window_s": window_s,
            "features": _check_features(fields.get("features")),
            "thresholds": _check_thresholds(fields.get("thresholds")), "sample_size": sample,
            "interval_s": interval_s, "enabled": bool(fields.get("enabled", True))}

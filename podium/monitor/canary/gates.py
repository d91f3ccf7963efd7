"""A canary's live gates: what each version served since the step started, and whether the
candidate is worse than the baseline by more than the thresholds allow.

Per version (:func:`measure`), from the gateway's spans (``model`` is ``NAME@N`` for the local
provider's registry serving, ``registry:/NAME@N`` for any other provider):

- ``requests``: spans it answered, plus spans where the router tried it, it failed and another
  deployment answered (the router fails over within an alias, so a failing candidate shows up
  in the span's ``metadata.gateway.attempts``, not in its status);
- ``error_rate``: the share of those requests it could not answer;
- ``p95_ms``: the 95th percentile latency of the requests it answered;
- ``scores``: the mean of each online score (``source = online``) on the traces it answered;
- ``guardrail_rate``: the share of its answered requests a guardrail flagged or blocked.

:func:`judge` compares candidate with baseline: an error-rate increase above
``max_error_rate_increase`` (absolute), a p95 above ``max_p95_ratio`` x the baseline's (and at
least ``min_p95_ms`` slower), a drop of any shared online score above ``max_score_drop``
(absolute), a guardrail-rate increase above ``max_guardrail_rate_increase``. Nothing is judged
before the candidate has ``min_requests`` requests in the step, except a breach that is already
certain: more failed candidate requests than the error-rate gate allows over ``min_requests``.

Online scores arrive after the answers they score (the online evaluator runs on the worker), so
a step also waits for them: each score the baseline's answers carried in the hour before the
canary started (:func:`expected_scores`) is judged only once the candidate has ``min_scored``
scored answers in the step (at most ``min_requests``) and the baseline at least one. Without
this wait a fast step would pass before a single answer of the candidate was scored.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from podium.errors import ValidationFailed

__all__ = ["REGISTRY_PREFIX", "Gates", "VersionStats", "expected_scores", "judge", "measure", "served_names"]

_FLAGGED = frozenset({"flag", "block", "redact", "warn"})
REGISTRY_PREFIX = "registry:/"


def served_names(name: str, version: int) -> list[str]:
    """The ``model`` values a span carries when ``name@version`` served it: the same rule as
    ``podium.registry.served_names`` (monitor and registry are sibling layers, so neither
    imports the other; a test pins the two together)."""
    return [f"{name}@{version}", f"{REGISTRY_PREFIX}{name}@{version}"]


@dataclass(frozen=True)
class Gates:
    """The thresholds a step must stay within (defaults in parentheses in the CLI's help)."""

    max_error_rate_increase: float = 0.05
    max_p95_ratio: float = 1.5
    min_p95_ms: float = 50.0
    max_score_drop: float = 0.1
    max_guardrail_rate_increase: float = 0.05
    min_scored: float = 10  # scored candidate answers per online score before it is judged (capped at min_requests)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Gates:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationFailed(f"unknown gate(s) {', '.join(unknown)}; the gates are {', '.join(sorted(known))}",
                                   details=[{"field": f"gates.{k}", "message": "unknown gate"} for k in unknown])
        out: dict[str, float] = {}
        for k, v in data.items():
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValidationFailed(f"gate {k} must be a number >= 0, not {v!r}",
                                       details=[{"field": f"gates.{k}", "message": "a number >= 0"}])
            out[k] = float(v)
        g = cls(**out)
        if g.max_p95_ratio < 1:
            raise ValidationFailed("gate max_p95_ratio must be >= 1 (1.5: the candidate's p95 may be 50% slower)",
                                   details=[{"field": "gates.max_p95_ratio", "message": ">= 1"}])
        return g

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class VersionStats:
    version: int
    requests: int = 0
    errors: int = 0
    answered: int = 0
    p95_ms: float | None = None
    scores: dict[str, float] | None = None
    score_counts: dict[str, int] | None = None
    guardrail_flagged: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def guardrail_rate(self) -> float | None:
        return self.guardrail_flagged / self.answered if self.answered else None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": _r(self.error_rate), "answered": self.answered, "p95_ms": _r(self.p95_ms, 1),
                "scores": {k: _r(v) for k, v in (self.scores or {}).items()},
                "score_counts": dict(self.score_counts or {}), "guardrail_flagged": self.guardrail_flagged,
                "guardrail_rate": _r(self.guardrail_rate)}


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None else round(v, digits)


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    k = max(0, math.ceil(0.95 * len(xs)) - 1)
    return xs[k]


def measure(repo: Any, project_id: str, model: str, versions: tuple[int, int], since: datetime, *,
            alias: str | None = None) -> dict[int, VersionStats]:
    """Live figures of each version (baseline, candidate) over spans that started at or after
    ``since`` (``repo`` is ``store.canaries``). With ``alias``, gateway spans of other aliases
    (another alias serving the same version, an eval run) are left out."""
    names = {v: served_names(model, v) for v in versions}
    # A deployment id ends with "/<its model>": "/registry:/NAME@N" as configured, or "/NAME@N" once
    # the local provider bound it to the version; "/NAME@N" matches both (and not "/xNAME@N", "@N0").
    dep_suffix = {v: "/" + names[v][0] for v in versions}
    by_name = {n: v for v, ns in names.items() for n in ns}
    stats = {v: VersionStats(v) for v in versions}
    latencies: dict[int, list[float]] = {v: [] for v in versions}
    answered_ids: dict[int, set[tuple[str, str]]] = {v: set() for v in versions}
    all_names = [n for ns in names.values() for n in ns]
    for s in repo.spans_since(project_id, all_names, since):
        if alias is not None and s["alias"] not in (None, alias):
            continue
        final = by_name.get(s["model"])
        tried: dict[int, bool] = {}  # version -> did one of its attempts succeed
        for a in s["attempts"] or ():
            dep = str((a or {}).get("deployment") or "")
            for v, suffix in dep_suffix.items():
                if dep.endswith(suffix):
                    tried[v] = tried.get(v, False) or bool(a.get("ok"))
        if final is not None and final not in tried:
            tried[final] = s["status"] != "error"
        for v, ok in tried.items():
            st = stats[v]
            st.requests += 1
            if v == final and ok:
                st.answered += 1
                answered_ids[v].add((s["trace_id"], s["id"]))
                if s["latency_ms"] is not None:
                    latencies[v].append(float(s["latency_ms"]))
            else:
                st.errors += 1
    for v in versions:
        st = stats[v]
        st.p95_ms = _p95(latencies[v])
        sums: dict[str, list[float]] = {}
        for tid, sid, name, value in repo.online_scores(project_id, names[v], since):
            if (tid, sid) in answered_ids[v]:
                sums.setdefault(name, []).append(value)
        st.scores = {k: sum(xs) / len(xs) for k, xs in sums.items()}
        st.score_counts = {k: len(xs) for k, xs in sums.items()}
        flagged = {(tid, sid) for tid, sid, action in repo.guardrail_actions(project_id, names[v], since)
                   if action in _FLAGGED and (tid, sid) in answered_ids[v]}
        st.guardrail_flagged = len(flagged)
    return stats


def expected_scores(repo: Any, project_id: str, model: str, baseline: int, started: datetime, *,
                    lookback_s: float = 3600.0) -> set[str]:
    """The online scores the baseline's answers carried from ``lookback_s`` before the canary
    ``started`` on: the scores the gates wait for before judging a step."""
    since = started - timedelta(seconds=lookback_s)
    return {name for _tid, _sid, name, _v in repo.online_scores(project_id, served_names(model, baseline), since)}


def judge(gates: Gates, baseline: VersionStats, candidate: VersionStats, min_requests: int,
          expected: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """``{"verdict": "pass" | "breach" | "wait", "rows": [...], "reasons": [...], "waiting": [...]}``:
    one row per gate with both values, the limit and whether it held (None: not judged yet);
    ``waiting`` says what a ``wait`` waits for besides requests."""
    rows: list[dict[str, Any]] = []
    reasons: list[str] = []
    waiting: list[str] = []
    need = max(1, min(int(gates.min_scored), min_requests))

    def row(name: str, b: float | None, c: float | None, limit: str, ok: bool | None, why: str = "") -> None:
        rows.append({"gate": name, "baseline": _r(b), "candidate": _r(c), "limit": limit, "ok": ok})
        if ok is False:
            reasons.append(why)

    rows.append({"gate": "requests", "baseline": baseline.requests, "candidate": candidate.requests,
                 "limit": f">= {min_requests} candidate requests", "ok": candidate.requests >= min_requests})
    be, ce = baseline.error_rate or 0.0, candidate.error_rate
    if ce is not None:
        ok = ce - be <= gates.max_error_rate_increase + 1e-12
        row("error_rate", be, ce, f"+{gates.max_error_rate_increase:g} over baseline", ok,
            f"error rate {ce:.1%} vs baseline {be:.1%} (allowed +{gates.max_error_rate_increase:.1%})")
    if candidate.p95_ms is not None and baseline.p95_ms is not None:
        limit = max(baseline.p95_ms * gates.max_p95_ratio, baseline.p95_ms + gates.min_p95_ms)
        ok = candidate.p95_ms <= limit
        row("p95_ms", baseline.p95_ms, candidate.p95_ms, f"<= {gates.max_p95_ratio:g}x baseline", ok,
            f"p95 latency {candidate.p95_ms:.0f} ms vs baseline {baseline.p95_ms:.0f} ms "
            f"(allowed {gates.max_p95_ratio:g}x)")
    for name in sorted(set(expected) | (set(candidate.scores or {}) & set(baseline.scores or {}))):
        b, c = (baseline.scores or {}).get(name), (candidate.scores or {}).get(name)
        cn, bn = (candidate.score_counts or {}).get(name, 0), (baseline.score_counts or {}).get(name, 0)
        if b is None or c is None or cn < need:
            row(f"score:{name}", b, c, f">= {need} scored candidate answers ({cn} so far)", None)
            waiting.append(f"online score {name}: {cn} of {need} candidate answers scored"
                           + ("" if bn else ", none of the baseline's yet"))
            continue
        ok = b - c <= gates.max_score_drop + 1e-12
        row(f"score:{name}", b, c, f"-{gates.max_score_drop:g} from baseline", ok,
            f"online score {name} {c:.3f} vs baseline {b:.3f} (allowed drop {gates.max_score_drop:g})")
    bg, cg = baseline.guardrail_rate or 0.0, candidate.guardrail_rate
    if cg is not None:
        ok = cg - bg <= gates.max_guardrail_rate_increase + 1e-12
        row("guardrail_rate", bg, cg, f"+{gates.max_guardrail_rate_increase:g} over baseline", ok,
            f"guardrail flag/block rate {cg:.1%} vs baseline {bg:.1%} "
            f"(allowed +{gates.max_guardrail_rate_increase:.1%})")
    if candidate.requests < min_requests and min_requests > 0 and \
            candidate.errors / min_requests - be > gates.max_error_rate_increase + 1e-12:
        # Certain already: even if every request still to come succeeded, the rate over
        # min_requests would break the gate. (The router cools a failing deployment down after a
        # few failures in a row, so a broken candidate may never reach min_requests.)
        reasons.insert(0, f"{candidate.errors} failed requests of the {min_requests} the step needs: error rate at "
                          f"least {candidate.errors / min_requests:.1%} vs baseline {be:.1%} "
                          f"(allowed +{gates.max_error_rate_increase:.1%})")
        verdict = "breach"
    elif candidate.requests < min_requests:
        verdict = "wait"
    elif reasons:
        verdict = "breach"
    elif waiting:
        verdict = "wait"
    else:
        verdict = "pass"
    return {"verdict": verdict, "rows": rows, "reasons": reasons, "waiting": waiting}

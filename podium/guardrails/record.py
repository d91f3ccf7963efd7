"""How a guardrail decision is recorded on a trace: one ``guardrail`` span per scanned text,
and one score per rule that ran. The gateway, the API and the SDK decorator all record through
these two functions, so the UI and the trace filters read one shape.

Span: kind ``guardrail``, name ``guardrail.input`` / ``guardrail.output``, input the text as it
went on (redacted where a rule redacted: originals are never stored), output
``{"action", "reason"}``, status ``error`` when blocked, and attributes::

    podium.guardrail.policy      the policy's name
    podium.guardrail.kind        input | output
    podium.guardrail.action      allow | warn | flag | redact | block
    podium.guardrail.blocked_by  the rule that blocked (absent otherwise)
    podium.guardrail.latency_ms  the whole decision
    podium.guardrail.outcomes    [{rule, scanner, verdict, score, threshold, action, latency_ms,
                                   findings: [{label, start, end}], detail, error}]

Scores: ``guardrail.<rule>`` = the rule's risk score in [0, 1] (source ``guardrail``), so
``score_name=guardrail.prompt-injection&min_score=0.5`` finds the traces a scanner flagged.
"""

from __future__ import annotations

from typing import Any

from podium.guardrails.engine import Decision

__all__ = ["SCORE_PREFIX", "score_values", "span_fields"]

SCORE_PREFIX = "guardrail."


def _outcomes(decision: Decision) -> list[dict[str, Any]]:
    out = []
    for o in decision.outcomes:
        d = o.to_dict()
        d.pop("kind", None)
        # The matched text is personal data or a secret more often than not: keep where, not what.
        d["findings"] = [{"label": f.label, "start": f.start, "end": f.end} for f in o.findings]
        out.append(d)
    return out


def span_fields(decision: Decision) -> dict[str, Any]:
    """The fields of the ``guardrail`` span for ``decision``: name, input, output, status and
    attributes (merge into whatever span record the caller builds)."""
    attrs: dict[str, Any] = {
        "podium.guardrail.policy": decision.policy,
        "podium.guardrail.kind": decision.kind,
        "podium.guardrail.action": decision.action,
        "podium.guardrail.latency_ms": round(decision.latency_ms, 3),
        "podium.guardrail.outcomes": _outcomes(decision),
    }
    if decision.blocked_by is not None:
        attrs["podium.guardrail.blocked_by"] = decision.blocked_by.rule
    return {
        "name": f"guardrail.{decision.kind}",
        "kind": "guardrail",
        "input": decision.text,
        "output": {"action": decision.action, "reason": None if decision.action == "allow" else decision.reason()},
        "status": "error" if decision.blocked else "ok",
        "status_message": decision.reason() if decision.blocked else None,
        "attributes": attrs,
    }


def score_values(decision: Decision) -> dict[str, float]:
    """``{"guardrail.<rule>": risk score}`` for every rule that ran."""
    return {SCORE_PREFIX + o.rule: round(float(o.score), 4) for o in decision.outcomes}

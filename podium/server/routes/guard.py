"""``POST /api/v1/guard/scan``: run a guardrail policy on one text, for apps that do not call
their models through the gateway (docs/guardrails.md, "SDK, API and CLI").

Body: ``{text, kind: input|output, policy?, prompt?, documents?, trace_id?, span_id?,
include_originals?}``. ``policy`` is a name (the project's policies, then the gateway config
file's, then the built-ins ``default``, ``strict``, ``monitor``) or an inline policy object;
omitted, it is the project's default policy (``PUT /api/v1/guardrails/default``), else the
gateway config's, else ``default``. A name that is ``off`` scans nothing (action ``allow``).

The answer is the decision (``Decision.to_dict()``) plus ``redactions`` and ``recorded``.
Originals are never echoed unless asked: findings carry ``label``/``start``/``end``/``score``
but not the matched ``text``, and ``redactions`` (placeholder -> original, for putting
reversible redactions back into a model's answer) is ``{}``; ``include_originals: true`` adds
both (the caller sent the text, so this is its own data, but it keeps it out of proxies' logs
by default). With ``trace_id`` the decision is recorded on that trace as a ``guardrail`` span
(under ``span_id`` when given) with one ``guardrail.<rule>`` score per rule, through the
ingest queue like any span; ``recorded`` says whether it was queued.

Compiled policies are kept per (project, name) and rebuilt when the spec changes; decisions
are counted in ``/metrics`` (``podium.guardrails.metrics``).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from podium.core.records import Id, ScoreDataType, ScoreIn, SpanIn, SpanKind, SpanStatus
from podium.core.roles import Action
from podium.errors import ValidationFailed
from podium.guardrails import metrics
from podium.guardrails.engine import Decision, Guard
from podium.guardrails.policy import BUILTIN_POLICIES
from podium.guardrails.record import score_values, span_fields
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.convert import BatchBuilder
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/guard", tags=["guardrails"], route_class=StrictJSONRoute)

require_guard_scan = Annotated[ApiKey, needs(Action.GUARD_SCAN, "scan text with a guardrail policy")]

OFF = "off"
_MAX_COMPILED = 1000


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Field(max_length=1_000_000, description="the prompt or the answer to check")]
    kind: Literal["input", "output"] = Field("input", description="input: a prompt; output: a model's answer")
    policy: (Annotated[str, Field(min_length=1, max_length=128)] | dict[str, Any] | None) = Field(
        None, description="a policy name, or an inline policy object; omitted: the project's default")
    prompt: Annotated[str, Field(max_length=1_000_000)] | None = Field(
        None, description="output scans: the prompt the answer replies to")
    documents: Annotated[list[Annotated[str, Field(max_length=1_000_000)]], Field(max_length=100)] = Field(
        default_factory=list, description="output scans: the context the answer must be grounded in")
    trace_id: Id | None = Field(None, description="record the decision on this trace")
    span_id: Id | None = Field(None, description="with trace_id: the span the decision goes under")
    include_originals: bool = Field(False, description="return matched texts and reversible redactions' originals")


class _Compiled:
    """Guards by (project, name), rebuilt when their spec changes."""

    def __init__(self) -> None:
        self._guards: dict[tuple[str, str], tuple[str, Guard]] = {}
        self._lock = threading.Lock()

    def get(self, project_id: str, name: str | None, spec: Any) -> Guard:
        """``name`` None: an inline policy, kept by its spec."""
        fingerprint = json.dumps(spec, sort_keys=True, default=str)
        slot = (project_id, name if name is not None else "\0" + fingerprint)
        hit = self._guards.get(slot)
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        if isinstance(spec, str):
            g = Guard(spec, observer=metrics.observe)
        else:
            g = Guard({**spec, "name": name} if name is not None else {"name": "inline", **spec},
                      observer=metrics.observe)
        with self._lock:
            if len(self._guards) >= _MAX_COMPILED:
                self._guards.clear()
            self._guards[slot] = (fingerprint, g)
        return g


def _compiled(request: Request) -> _Compiled:
    c = getattr(request.app.state, "guard_compiled", None)
    if c is None:
        c = request.app.state.guard_compiled = _Compiled()
    return c


def _project(st: AppState, project_id: str) -> dict[str, Any]:
    """The project's stored policies and default (one indexed read; this route runs in a worker thread)."""
    return st.store.projects.project_guardrails(project_id)


def _guard(request: Request, st: AppState, project_id: str, policy: str | dict[str, Any] | None) -> Guard | None:
    """The compiled guard of ``policy`` for this project; None for ``off``."""
    if isinstance(policy, dict):
        return _compiled(request).get(project_id, None, policy)
    project = _project(st, project_id)
    file_policies = st.gateway.config.guardrail_policies if st.gateway is not None else {}
    name = policy
    if name is None:
        name = project["default"] or (st.gateway.config.guardrails_default if st.gateway is not None else None)
        name = name or "default"
    if name == OFF:
        return None
    spec: Any
    if name in project["policies"]:
        spec = project["policies"][name]
    elif name in file_policies:
        spec = file_policies[name].model_dump(mode="json")
    elif name in BUILTIN_POLICIES:
        spec = name
    else:
        known = sorted({*project["policies"], *file_policies, *BUILTIN_POLICIES})
        raise ValidationFailed(
            f"unknown guardrail policy {name!r}; use one of {', '.join(known)}, off, an inline policy object, or "
            f"define it with PUT /api/v1/guardrails/policies/{name}",
            details=[{"field": "policy", "message": "unknown policy"}])
    try:
        return _compiled(request).get(project_id, name, spec)
    except ValidationFailed as e:
        raise ValidationFailed(f"guardrail policy {name!r} cannot be used: {e.message}", details=e.details) from e


def _answer(d: Decision, originals: bool) -> dict[str, Any]:
    out = d.to_dict()
    if not originals:
        for o in out["outcomes"]:
            for f in o["findings"]:
                f.pop("text", None)
    out["redactions"] = dict(d.redactions) if originals else {}
    return out


def _record(st: AppState, project_id: str, body: ScanIn, d: Decision, started: datetime) -> bool:
    assert body.trace_id is not None
    f = span_fields(d)
    span_id = uuid.uuid4().hex[:16]
    end = started + timedelta(milliseconds=d.latency_ms)
    builder = BatchBuilder(project_id, lambda: st.prices_for(project_id))
    builder.add_span(SpanIn(
        id=span_id, trace_id=body.trace_id, parent_id=body.span_id, name=f["name"], kind=SpanKind.GUARDRAIL,
        start_time=started, end_time=end, status=SpanStatus.ERROR if f["status"] == "error" else SpanStatus.OK,
        status_message=f["status_message"], input=f["input"], output=f["output"], attributes=f["attributes"]))
    for name, value in score_values(d).items():
        builder.add_score(ScoreIn(name=name, value=value, data_type=ScoreDataType.NUMERIC, trace_id=body.trace_id,
                                  span_id=span_id, source="guardrail", timestamp=end))
    return st.ingester.submit_nowait(builder.batch)


@router.post("/scan", summary="Scan a text with a guardrail policy; optionally record the decision on a trace")
def scan(request: Request, body: ScanIn, key: require_guard_scan) -> dict[str, Any]:
    st: AppState = request.app.state.podium
    if body.span_id is not None and body.trace_id is None:
        raise ValidationFailed("span_id needs trace_id: the span the decision goes under is on that trace",
                               details=[{"field": "span_id", "message": "given without trace_id"}])
    guard = _guard(request, st, key.project_id, body.policy)
    started = datetime.now(UTC)
    if guard is None:
        d = Decision(OFF, body.kind, "allow", body.text, [], 0.0)
    else:
        d = guard.scan(body.text, body.kind, prompt=body.prompt, documents=body.documents)
    out = _answer(d, body.include_originals)
    out["recorded"] = _record(st, key.project_id, body, d, started) if body.trace_id and guard is not None else False
    return out

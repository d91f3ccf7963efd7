"""Alert rules and history: ``/api/v1/alert-rules`` (CRUD, ``mute``, ``unmute``, ``resolve``,
``test``) and ``GET /api/v1/alerts`` (the history). Reads need a read key, changes a write
(admin or member) key. A rule is addressed by its id or its name.

A rule is checked when it is saved: its metric query (``store.repos.metrics.check_query``),
its kind against what it watches (drift statistics take thresholds only) and every channel
(``podium.alerts.build``: an unknown type, a bad parameter or an unset ``env:NAME`` is a 400).
Channel secrets (webhook URLs, routing keys, passwords, headers) never come back: responses show
``env:NAME`` references as they are and other secret values as ``***``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from podium.alerts import build
from podium.core.metrics import MetricQuery
from podium.core.roles import Action
from podium.errors import BadRequest, Conflict, NotFound
from podium.monitor.alerting import Alerting
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.alerts import AlertRepo
from podium.store.repos.metrics import check_query
from podium.store.repos.projects import ApiKey

__all__ = ["RuleIn", "alerting_for", "check_rule", "public_rule", "router", "rule_fields"]

router = APIRouter(prefix="/api/v1", tags=["alerts"], route_class=StrictJSONRoute)

_read = Annotated[ApiKey, needs(Action.READ, "read alert rules and history")]
_write = Annotated[ApiKey, needs(Action.WRITE, "change alert rules")]

_Finite = Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)]
_Name = Annotated[str, Field(min_length=1, max_length=256)]
_Str = Annotated[str, Field(max_length=1000)]
_DAY = 86400
SECRET_PARAMS = ("url", "routing_key", "password", "headers", "username")
_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": _DAY, "w": 7 * _DAY}
MAX_MUTE_S = 366 * _DAY
EventStatus = Literal["fired", "resolved", "renotified", "suppressed", "test", "error", "muted", "unmuted"]


class MetricCondition(BaseModel):
    """Watch a metric query over the rule's window (``podium.core.metrics``)."""

    model_config = ConfigDict(extra="forbid")
    metric: Annotated[str, Field(min_length=1, max_length=300)]
    agg: Annotated[str, Field(min_length=1, max_length=16)] = "avg"
    filters: Annotated[dict[Annotated[str, Field(max_length=64)],
                            _Str | _Finite | Annotated[list[Annotated[str, Field(max_length=200)]],
                                                       Field(max_length=20)]],
                       Field(max_length=20)] = Field(default_factory=dict)


class DriftCondition(BaseModel):
    """Watch the newest result of a drift monitor's statistic (threshold rules only)."""

    model_config = ConfigDict(extra="forbid")
    drift: _Name
    statistic: _Name


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, Field(min_length=1, max_length=64)]
    params: Annotated[dict[Annotated[str, Field(max_length=64)], Any], Field(max_length=50)] = Field(
        default_factory=dict)


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name
    description: Annotated[str, Field(max_length=10_000)] | None = None
    enabled: bool = True
    severity: Literal["info", "warning", "critical"] = "warning"
    condition: MetricCondition | DriftCondition
    kind: Literal["threshold", "change", "anomaly"] = "threshold"
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: _Finite
    window_s: Annotated[int, Field(ge=10, le=30 * _DAY)] = 300
    baseline_offset_s: Annotated[int, Field(ge=60, le=90 * _DAY)] = _DAY
    change_mode: Literal["relative", "absolute"] = "relative"
    anomaly_windows: Annotated[int, Field(ge=3, le=100)] = 12
    two_sided: bool = False
    min_samples: Annotated[int, Field(ge=0, le=1_000_000_000)] = 0
    cooldown_s: Annotated[int, Field(ge=0, le=30 * _DAY)] = 300
    renotify_s: Annotated[int, Field(ge=0, le=30 * _DAY)] = 0
    eval_interval_s: Annotated[int, Field(ge=1, le=_DAY)] = 30
    channels: Annotated[list[ChannelIn], Field(max_length=10)] = Field(default_factory=list)


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: _Name | None = None
    description: Annotated[str, Field(max_length=10_000)] | None = None
    enabled: bool | None = None
    severity: Literal["info", "warning", "critical"] | None = None
    condition: MetricCondition | DriftCondition | None = None
    kind: Literal["threshold", "change", "anomaly"] | None = None
    op: Literal[">", ">=", "<", "<="] | None = None
    threshold: _Finite | None = None
    window_s: Annotated[int, Field(ge=10, le=30 * _DAY)] | None = None
    baseline_offset_s: Annotated[int, Field(ge=60, le=90 * _DAY)] | None = None
    change_mode: Literal["relative", "absolute"] | None = None
    anomaly_windows: Annotated[int, Field(ge=3, le=100)] | None = None
    two_sided: bool | None = None
    min_samples: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None
    cooldown_s: Annotated[int, Field(ge=0, le=30 * _DAY)] | None = None
    renotify_s: Annotated[int, Field(ge=0, le=30 * _DAY)] | None = None
    eval_interval_s: Annotated[int, Field(ge=1, le=_DAY)] | None = None
    channels: Annotated[list[ChannelIn], Field(max_length=10)] | None = None


class MuteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    until: AwareDatetime | None = None
    duration: Annotated[str, Field(min_length=1, max_length=16, description="e.g. 90s, 30m, 1h, 2d, 1w")] | None = None


class ChannelOut(BaseModel):
    type: str
    params: dict[str, Any]


class RuleOut(BaseModel):
    id: str
    name: str
    description: str | None
    enabled: bool
    severity: str
    condition: dict[str, Any]
    kind: str
    op: str
    threshold: float
    window_s: int
    baseline_offset_s: int | None
    change_mode: str | None
    anomaly_windows: int | None
    two_sided: bool | None
    min_samples: int
    cooldown_s: int
    renotify_s: int
    eval_interval_s: int
    channels: list[ChannelOut]
    state: str
    episode: int
    muted_until: datetime | None
    fired_at: datetime | None
    last_value: float | None
    last_error: str | None
    last_evaluated_at: datetime | None
    last_notified_at: datetime | None
    next_eval_at: datetime
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class RulePage(BaseModel):
    data: list[RuleOut]


class DeliveryOut(BaseModel):
    channel: str
    ok: bool
    status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0
    attempts: int = 1
    target: str = ""


class ActionOut(BaseModel):
    rule: RuleOut
    deliveries: list[DeliveryOut]


class EventOut(BaseModel):
    id: str
    rule_id: str
    rule_name: str
    severity: str
    status: str
    episode: int
    value: float | None
    threshold: float | None
    window_start: datetime | None
    window_end: datetime | None
    message: str | None
    actor: str | None
    deliveries: list[DeliveryOut]
    created_at: datetime


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None


# --- helpers shared with the UI and the CLI's docs -----------------------------------------------


def _st(request: Request) -> AppState:
    st: AppState = request.app.state.podium
    return st


def _repo(request: Request) -> AlertRepo:
    return _st(request).store.alerts


def alerting_for(request: Request) -> Alerting:
    st = _st(request)
    return Alerting(st.store, base_url=st.settings.base_url)


def _redact(v: Any) -> Any:
    if isinstance(v, str):
        return v if v.startswith("env:") else "***"
    if isinstance(v, dict):
        return {k: _redact(x) for k, x in v.items()}
    return "***"


def public_rule(row: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as the API shows it: kind parameters flat, channel secrets hidden."""
    params = row.get("params") or {}
    out = {k: v for k, v in row.items() if k not in ("project_id", "params", "notified_episode")}
    out["baseline_offset_s"] = params.get("baseline_offset_s")
    out["change_mode"] = params.get("change_mode")
    out["anomaly_windows"] = params.get("anomaly_windows")
    out["two_sided"] = params.get("two_sided")
    out["channels"] = [{"type": c.get("type"), "params": {k: (_redact(v) if k in SECRET_PARAMS else v)
                                                          for k, v in (c.get("params") or {}).items()}}
                       for c in row.get("channels") or []]
    return out


def rule_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A stored rule as a complete ``RuleIn`` body (secrets included: server side only)."""
    params = row.get("params") or {}
    out = {k: row[k] for k in ("name", "description", "enabled", "severity", "condition", "kind", "op", "threshold",
                               "window_s", "min_samples", "cooldown_s", "renotify_s", "eval_interval_s")}
    out["channels"] = row.get("channels") or []
    out.update({k: v for k, v in params.items() if v is not None})
    return out


def check_rule(body: RuleIn) -> dict[str, Any]:
    """The columns to store for ``body``, after the checks a schema cannot make (400s)."""
    cond = body.condition
    if body.window_s < body.eval_interval_s and not isinstance(cond, DriftCondition):
        raise BadRequest(f"window_s ({body.window_s}) is shorter than eval_interval_s ({body.eval_interval_s}): the "
                         "rule would never see the traces between its windows; make the window at least as long "
                         "as the interval (a little longer, so consecutive windows overlap)",
                         details=[{"field": "window_s"}])
    if isinstance(cond, DriftCondition):
        if body.kind != "threshold":
            raise BadRequest(f"a drift statistic takes kind 'threshold' only (got {body.kind!r}); compare the "
                             "statistic with a limit, e.g. p_value < 0.01", details=[{"field": "kind"}])
        condition: dict[str, Any] = {"drift": cond.drift, "statistic": cond.statistic}
    else:
        q = MetricQuery(metric=cond.metric, agg=cond.agg, filters=dict(cond.filters))
        try:
            check_query(q)
        except BadRequest as e:
            raise BadRequest(f"condition: {e.message}", details=e.details) from None
        condition = {"metric": cond.metric, "agg": cond.agg, "filters": dict(cond.filters)}
    channels = []
    for i, ch in enumerate(body.channels):
        build(ch.type, dict(ch.params), where=f"channels[{i}]")  # raises the 400 that says what is accepted
        channels.append({"type": ch.type, "params": dict(ch.params)})
    if body.kind == "change":
        params: dict[str, Any] = {"baseline_offset_s": body.baseline_offset_s, "change_mode": body.change_mode}
    elif body.kind == "anomaly":
        params = {"anomaly_windows": body.anomaly_windows, "two_sided": body.two_sided}
    else:
        params = {}
    out = body.model_dump(exclude={"baseline_offset_s", "change_mode", "anomaly_windows", "two_sided",
                                   "condition", "channels"})
    out.update(condition=condition, params=params, channels=channels)
    return out


def _get(request: Request, project_id: str, ref: str) -> dict[str, Any]:
    row = _repo(request).get_rule(project_id, ref)
    if row is None:
        raise NotFound(f"no alert rule {ref!r} in this project; GET /api/v1/alert-rules lists them")
    return row


def mute_until(body: MuteIn, now: datetime) -> datetime:
    if (body.until is None) == (body.duration is None):
        raise BadRequest('say how long: {"duration": "1h"} (s, m, h, d, w) or {"until": "2026-12-31T09:00:00Z"}',
                         details=[{"field": "duration"}])
    if body.duration is not None:
        m = _DURATION.match(body.duration)
        if m is None:
            raise BadRequest(f"duration {body.duration!r} is not a duration; write e.g. 90s, 30m, 1h, 2d or 1w",
                             details=[{"field": "duration"}])
        until = now + timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    else:
        assert body.until is not None
        until = body.until.astimezone(UTC)
    if until <= now:
        raise BadRequest("the mute must end in the future", details=[{"field": "until"}])
    if until > now + timedelta(seconds=MAX_MUTE_S):
        raise BadRequest("mute for at most a year; disable the rule (PATCH enabled=false) to stop it for good",
                         details=[{"field": "until"}])
    return until


# --- routes ------------------------------------------------------------------------------------------


@router.get("/alert-rules", response_model=RulePage, summary="List alert rules")
def list_rules(request: Request, key: _read) -> dict[str, Any]:
    return {"data": [public_rule(r) for r in _repo(request).list_rules(key.project_id)]}


@router.post("/alert-rules", status_code=201, response_model=RuleOut, summary="Create an alert rule")
def create_rule(request: Request, body: RuleIn, key: _write) -> dict[str, Any]:
    row = _repo(request).create_rule(key.project_id, check_rule(body), now=datetime.now(UTC), actor=key.public_key)
    return public_rule(row)


@router.get("/alert-rules/{rule}", response_model=RuleOut, summary="Get an alert rule (by id or name)")
def get_rule(request: Request, rule: str, key: _read) -> dict[str, Any]:
    return public_rule(_get(request, key.project_id, rule))


@router.patch("/alert-rules/{rule}", response_model=RuleOut, summary="Change an alert rule")
def patch_rule(request: Request, rule: str, body: RulePatch, key: _write) -> dict[str, Any]:
    cur = _get(request, key.project_id, rule)
    changes = body.model_dump(include=body.model_fields_set, exclude_none=True)
    merged = {**rule_fields(cur), **changes}
    try:
        full = RuleIn.model_validate(merged)
    except Exception as e:
        raise BadRequest(f"the changed rule is not valid: {e}") from None
    row = _repo(request).update_rule(key.project_id, cur["id"], check_rule(full), now=datetime.now(UTC))
    if row is None:
        raise NotFound(f"no alert rule {rule!r} in this project; GET /api/v1/alert-rules lists them")
    return public_rule(row)


@router.delete("/alert-rules/{rule}", status_code=204, summary="Delete an alert rule and its history")
def delete_rule(request: Request, rule: str, key: _write) -> Response:
    cur = _get(request, key.project_id, rule)
    _repo(request).delete_rule(key.project_id, cur["id"])
    return Response(status_code=204)


@router.post("/alert-rules/{rule}/mute", response_model=RuleOut,
             summary="Mute a rule: it is still evaluated, nothing is sent until the mute ends")
def mute_rule(request: Request, rule: str, body: MuteIn, key: _write) -> dict[str, Any]:
    cur = _get(request, key.project_id, rule)
    now = datetime.now(UTC)
    until = mute_until(body, now)
    _repo(request).set_muted(key.project_id, cur["id"], until, now=now, event={
        "status": "muted", "episode": cur["episode"], "actor": key.public_key,
        "message": f"muted until {until.isoformat(timespec='seconds')} by {key.public_key}"})
    return public_rule(_get(request, key.project_id, cur["id"]))


@router.post("/alert-rules/{rule}/unmute", response_model=RuleOut, summary="End a rule's mute")
def unmute_rule(request: Request, rule: str, key: _write) -> dict[str, Any]:
    cur = _get(request, key.project_id, rule)
    now = datetime.now(UTC)
    _repo(request).set_muted(key.project_id, cur["id"], None, now=now, event={
        "status": "unmuted", "episode": cur["episode"], "actor": key.public_key,
        "message": f"unmuted by {key.public_key}"})
    return public_rule(_get(request, key.project_id, cur["id"]))


@router.post("/alert-rules/{rule}/resolve", response_model=ActionOut,
             summary="Resolve a firing rule by hand (sends the resolution through its channels)")
def resolve_rule(request: Request, rule: str, key: _write) -> dict[str, Any]:
    cur = _get(request, key.project_id, rule)
    if cur["state"] != "firing":
        raise Conflict(f"alert rule {cur['name']!r} is not firing; there is nothing to resolve")
    ok, deliveries = alerting_for(request).resolve(cur, key.public_key)
    if not ok:
        raise Conflict(f"alert rule {cur['name']!r} changed while it was being resolved; look at it again")
    return {"rule": public_rule(_get(request, key.project_id, cur["id"])),
            "deliveries": [d.to_dict() for d in deliveries]}


@router.post("/alert-rules/{rule}/test", response_model=ActionOut,
             summary="Send a test alert through the rule's channels and return the deliveries")
def test_rule(request: Request, rule: str, key: _write) -> dict[str, Any]:
    cur = _get(request, key.project_id, rule)
    if not cur.get("channels"):
        raise BadRequest(f"alert rule {cur['name']!r} has no channels; add one (PATCH channels) and test again",
                         details=[{"field": "channels"}])
    deliveries = alerting_for(request).test(cur, key.public_key)
    return {"rule": public_rule(cur), "deliveries": [d.to_dict() for d in deliveries]}


@router.get("/alerts", response_model=EventPage, summary="Alert history, newest first")
def list_events(
    request: Request,
    key: _read,
    rule: Annotated[str | None, Query(max_length=256, description="a rule's id or name")] = None,
    status: EventStatus | None = None,
    since: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    rule_id = None
    if rule is not None:
        rule_id = _get(request, key.project_id, rule)["id"]
    rows, nxt = _repo(request).events(key.project_id, rule_id=rule_id, status=status, since=since, limit=limit,
                                      cursor=cursor)
    return {"data": rows, "next_cursor": nxt}

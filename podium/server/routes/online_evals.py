"""Online evaluation rules: ``/api/v1/evaluation-rules`` (docs/online-evaluation.md).

List and read with a read key; create, change, delete and backfill with a write key (admin or
member). ``GET /evaluation-rules/{id}/stats``: matched, evaluated, failures, backlog, lag,
throughput and judge cost. The worker (embedded or ``podium worker``) does the evaluating.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from podium.core.records import utc
from podium.core.roles import Action
from podium.errors import BadRequest, NotFound
from podium.monitor.online.backfill import backfill
from podium.monitor.online.producer import KIND
from podium.monitor.online.rules import RuleIn, RulePatch, check_rule
from podium.monitor.queue.base import JobQueue
from podium.server.auth import needs
from podium.server.body import StrictJSONRoute
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["job_queue", "router", "rule_stats"]

router = APIRouter(prefix="/api/v1", tags=["online evaluation"], route_class=StrictJSONRoute)

Reader = Annotated[ApiKey, needs(Action.READ, "read evaluation rules")]
Writer = Annotated[ApiKey, needs(Action.WRITE, "change evaluation rules")]

#: Minutes over which throughput and lag are averaged.
RECENT_MIN = 5


class RuleOut(BaseModel):
    id: str
    name: str
    enabled: bool
    target: dict[str, Any]
    filter: dict[str, Any] | None
    sample_rate: float
    scorers: list[dict[str, Any]]
    mapping: dict[str, Any] | None
    delay_s: float
    cursor_time: datetime | None
    created_at: datetime
    updated_at: datetime


class RulePage(BaseModel):
    data: list[RuleOut]


class BackfillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: datetime
    end: datetime
    limit: Annotated[int, Field(ge=1, le=1_000_000)] = 100_000


class BackfillOut(BaseModel):
    matched: int
    enqueued: int


class StatsOut(BaseModel):
    rule_id: str
    matched: int = Field(description="traces queued by the rule (new jobs, backfills included)")
    evaluated: int = Field(description="traces (or spans) scored")
    failures: int = Field(description="scorer failures on one trace (the other scores were kept)")
    backlog: int = Field(description="matched but not yet evaluated")
    queue_backlog: int | None = Field(description="online evaluation jobs waiting in the queue, all rules")
    lag_s: float | None = Field(description=f"mean seconds from a trace's update to its scores, last {RECENT_MIN} min")
    cursor_lag_s: float | None = Field(description="how far behind now the rule's cursor is")
    evaluated_per_min: float = Field(description=f"throughput over the last {RECENT_MIN} minutes")
    judge_calls: int
    judge_cost: float = Field(description="USD spent on judge calls (the gateway's price of their usage)")
    series: list[dict[str, Any]] = Field(description="per-minute counters of the last hour")


def _st(request: Request) -> AppState:
    st: AppState = request.app.state.podium
    return st


def job_queue(request: Request) -> JobQueue:
    """The queue the worker drains (``PODIUM_QUEUE``), one per app."""
    q: JobQueue | None = getattr(request.app.state, "online_eval_queue", None)
    if q is None:
        from podium.monitor.queue.factory import make_queue

        st = _st(request)
        q = request.app.state.online_eval_queue = make_queue(st.settings, st.store)
    return q


def _get(request: Request, project_id: str, rule_id: str) -> dict[str, Any]:
    row = _st(request).store.online_evals.get(project_id, rule_id)
    if row is None:
        raise NotFound(f"no evaluation rule {rule_id!r} in this project; GET /api/v1/evaluation-rules lists them")
    return row


def rule_stats(request: Request, rule: dict[str, Any], *, queue_backlog: bool = True) -> dict[str, Any]:
    repo = _st(request).store.online_evals
    pid, rid = rule["project_id"], rule["id"]
    now = datetime.now(UTC)
    total = repo.totals(pid, [rid]).get(rid, {})
    recent = repo.totals(pid, [rid], since=now - timedelta(minutes=RECENT_MIN)).get(rid, {})
    matched, evaluated = int(total.get("matched", 0)), int(total.get("evaluated", 0))
    qb: int | None = None
    if queue_backlog:
        try:
            qb = job_queue(request).stats(pid).by_kind.get(KIND, 0)
        except Exception:
            qb = None
    rev = recent.get("evaluated", 0.0)
    ct = rule.get("cursor_time")
    return {
        "rule_id": rid, "matched": matched, "evaluated": evaluated, "failures": int(total.get("failed", 0)),
        "backlog": max(matched - evaluated, 0), "queue_backlog": qb,
        "lag_s": (recent.get("lag_s_sum", 0.0) / rev) if rev else None,
        "cursor_lag_s": (now - ct).total_seconds() if ct is not None else None,
        "evaluated_per_min": rev / RECENT_MIN,
        "judge_calls": int(total.get("judge_calls", 0)), "judge_cost": float(total.get("judge_cost", 0.0)),
        "series": [{"minute": b["bucket"].isoformat(), **{k: b[k] for k in ("matched", "evaluated", "failed",
                                                                           "judge_calls", "judge_cost")}}
                   for b in repo.series(pid, rid, minutes=60)],
    }


@router.get("/evaluation-rules", response_model=RulePage, summary="List online evaluation rules")
def list_rules(request: Request, key: Reader) -> dict[str, Any]:
    return {"data": _st(request).store.online_evals.list_rules(key.project_id)}


@router.post("/evaluation-rules", status_code=201, response_model=RuleOut,
             summary="Create an online evaluation rule (it judges traces that arrive from now on)")
def create_rule(request: Request, body: RuleIn, key: Writer) -> dict[str, Any]:
    rule = check_rule(body.model_dump(mode="json"))
    rule["cursor_time"] = datetime.now(UTC)  # new traces only; POST .../backfill for older ones
    return _st(request).store.online_evals.create(key.project_id, rule)


@router.get("/evaluation-rules/{rule_id}", response_model=RuleOut, summary="Get an online evaluation rule")
def get_rule(request: Request, rule_id: str, key: Reader) -> dict[str, Any]:
    return _get(request, key.project_id, rule_id)


@router.patch("/evaluation-rules/{rule_id}", response_model=RuleOut, summary="Change an online evaluation rule")
def patch_rule(request: Request, rule_id: str, body: RulePatch, key: Writer) -> dict[str, Any]:
    cur = _get(request, key.project_id, rule_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    changes = {k: v for k, v in changes.items() if v is not None or k == "mapping"}
    merged = {k: cur[k] for k in ("name", "enabled", "target", "filter", "sample_rate", "scorers", "mapping",
                                  "delay_s")}
    merged.update(changes)
    check_rule(merged)
    row = _st(request).store.online_evals.update(key.project_id, rule_id, {k: merged[k] for k in changes})
    if row is None:
        raise NotFound(f"no evaluation rule {rule_id!r} in this project (deleted meanwhile)")
    return row


@router.delete("/evaluation-rules/{rule_id}", status_code=204, summary="Delete an online evaluation rule "
               "(its scores stay)")
def delete_rule(request: Request, rule_id: str, key: Writer) -> Response:
    if not _st(request).store.online_evals.delete(key.project_id, rule_id):
        raise NotFound(f"no evaluation rule {rule_id!r} in this project; GET /api/v1/evaluation-rules lists them")
    return Response(status_code=204)


@router.post("/evaluation-rules/{rule_id}/backfill", response_model=BackfillOut,
             summary="Queue the rule's matching traces that started in [start, end)")
def backfill_rule(request: Request, rule_id: str, body: BackfillIn, key: Writer) -> dict[str, Any]:
    rule = _get(request, key.project_id, rule_id)
    if not rule["enabled"]:
        raise BadRequest(f"rule {rule['name']!r} is disabled; enable it (PATCH {{\"enabled\": true}}) before a backfill",
                         details=[{"field": "enabled", "message": "disabled"}])
    return backfill(_st(request).store, job_queue(request), rule, utc(body.start), utc(body.end), limit=body.limit)


@router.get("/evaluation-rules/{rule_id}/stats", response_model=StatsOut,
            summary="Matched, evaluated, failures, backlog, lag, throughput and judge cost of a rule")
def get_stats(request: Request, rule_id: str, key: Reader) -> dict[str, Any]:
    return rule_stats(request, _get(request, key.project_id, rule_id))

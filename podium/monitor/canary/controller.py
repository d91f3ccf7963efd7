"""The canary's state machine and the gateway alias rewrites it makes, shared by the REST API
(start, promote, rollback, pause, resume, abort) and the worker's :class:`CanaryJob` (check).

A canary splits an API-declared gateway alias between two versions of a registered model:
baseline ``registry:/NAME@B`` with weight ``100 - p`` and candidate ``registry:/NAME@C`` with
weight ``p`` (explicit version numbers, so the split is exact whatever aliases move meanwhile;
every other deployment field is copied from the alias's existing deployment, so providers
other than ``local`` keep their ``api_base`` and key). ``p`` walks ``steps`` (5, 25, 50, 100):

- each check measures both versions since the step started (:mod:`.gates`) and records the
  verdict in ``last_check`` (a ``check`` event when the verdict changes);
- a breach (once the candidate has ``min_requests`` requests) rolls back at once: the alias
  serves the baseline alone, status ``rolled_back``, a ``rollback`` event, and an alert on the
  canary's alert rule (its channels notify; see :meth:`CanaryController.raise_alert`);
- a pass after ``step_duration_s`` moves to the next step (a ``step`` event); reaching the last
  step (100) promotes: the registry alias ``promote_alias`` (``champion``) moves to the
  candidate (actor ``canary:<id>``, recorded in the registry's alias history), the gateway
  alias serves the candidate alone, status ``promoted``.

Every change is a compare-and-set on (status, step) in the same transaction as its event and its
gateway alias rewrite, so two workers (or a worker and a person) never both act. Writes to the
gateway alias are seen by every gateway within its alias cache TTL (5 s); the process that made
the change invalidates its own cache at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from podium.alerts import Alert
from podium.errors import BadRequest, Conflict, NotFound, ValidationFailed
from podium.monitor.alerting import metrics as alert_metrics
from podium.monitor.alerting.evaluator import deliver
from podium.monitor.canary import metrics
from podium.monitor.canary.gates import REGISTRY_PREFIX, Gates, expected_scores, judge, measure

__all__ = ["DEFAULT_ALERT_RULE", "DEFAULT_STEPS", "CanaryController", "check_steps"]

log = logging.getLogger("podium.monitor.canary")

DEFAULT_STEPS = (5, 25, 50, 100)
#: The alert rule a rollback raises when the canary names none (created on first need, disabled:
#: it is never evaluated on a schedule, canary rollbacks raise it; add channels to it on /alerts).
DEFAULT_ALERT_RULE = "canary-rollbacks"


def _now() -> datetime:
    return datetime.now(UTC)


def check_steps(steps: list[int] | tuple[int, ...]) -> list[int]:
    """Candidate percentages: increasing, each 1..100, ending at 100 (the promotion)."""
    out = [int(s) for s in steps]
    if not out or any(s < 1 or s > 100 for s in out) or any(b <= a for a, b in pairwise(out)) \
            or out[-1] != 100:
        raise ValidationFailed(f"steps {out} are not valid: give increasing percentages of traffic for the "
                               "candidate, each 1 to 100, ending at 100 (e.g. 5,25,50,100)",
                               details=[{"field": "steps", "message": "increasing, 1..100, ending at 100"}])
    if len(out) < 2:
        raise ValidationFailed("steps need at least one step below 100 before the promotion (e.g. 10,100)",
                               details=[{"field": "steps", "message": "at least two steps"}])
    return out


def _ref(model: str, version: int) -> str:
    return f"{REGISTRY_PREFIX}{model}@{version}"


class CanaryController:
    """Canaries over ``store`` (``store.canaries``, ``store.gateway``, ``store.models``,
    ``store.alerts``). ``gateway``: the in-process gateway whose alias cache to invalidate after a
    rewrite (None: the others see it within their TTL)."""

    def __init__(self, store: Any, *, gateway: Any = None, base_url: str = "http://127.0.0.1:8700",
                 clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.repo = store.canaries
        self.gateway = gateway
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    # --- the gateway alias ---------------------------------------------------------------------
    def stored_alias(self, project_id: str, alias: str) -> dict[str, Any]:
        for row in self.store.gateway.list_models(project_id):
            if row["name"] == alias:
                return dict(row["spec"])
        raise NotFound(f"gateway alias {alias!r} is not declared through the API in this project; a canary rewrites "
                       f"the alias's deployments, which only API-declared aliases allow (config-file aliases are "
                       f"read-only at run time): declare it with PUT /api/v1/gateway/models/{alias}",
                       details=[{"field": "gateway_alias", "message": "not an API-declared alias"}])

    @staticmethod
    def _template(spec: dict[str, Any], model: str) -> dict[str, Any]:
        """The deployment whose fields the canary's deployments copy: the first that serves a
        version of ``model``, else the first."""
        deps = list(spec.get("deployments") or [])
        if not deps:
            raise BadRequest("the gateway alias has no deployments to copy")
        for d in deps:
            m = str(d.get("model") or "")
            if m.startswith(REGISTRY_PREFIX) and m[len(REGISTRY_PREFIX):].partition("@")[0] == model:
                return dict(d)
        return dict(deps[0])

    def split_spec(self, canary: dict[str, Any], percent: int) -> dict[str, Any]:
        spec = dict(canary["original_spec"] or {})
        tpl = self._template(spec, canary["model_name"])
        tpl.pop("weight", None)
        if percent >= 100:
            deps = [{**tpl, "model": _ref(canary["model_name"], canary["candidate_version"])}]
        else:
            deps = [{**tpl, "model": _ref(canary["model_name"], canary["baseline_version"]), "weight": 100 - percent},
                    {**tpl, "model": _ref(canary["model_name"], canary["candidate_version"]), "weight": percent}]
        return {**spec, "deployments": deps}

    def single_spec(self, canary: dict[str, Any], version: int) -> dict[str, Any]:
        spec = dict(canary["original_spec"] or {})
        tpl = self._template(spec, canary["model_name"])
        tpl.pop("weight", None)
        return {**spec, "deployments": [{**tpl, "model": _ref(canary["model_name"], version)}]}

    def _writer(self, project_id: str, alias: str, spec: dict[str, Any]) -> Callable[[Any], None]:
        return self.repo.alias_writer(project_id, alias, spec, self.clock())

    def invalidate(self, project_id: str) -> None:
        if self.gateway is not None:
            try:
                self.gateway.invalidate(project_id)
            except Exception:  # the others see the change within the alias TTL anyway
                log.exception("could not invalidate the gateway's alias cache")

    @staticmethod
    def weights(canary: dict[str, Any]) -> dict[str, int]:
        """The split the alias serves now: ``{"baseline": %, "candidate": %}``."""
        st = canary["status"]
        if st == "promoted":
            return {"baseline": 0, "candidate": 100}
        if st in ("rolled_back", "aborted", "pending"):
            return {"baseline": 100, "candidate": 0}
        p = int(canary["steps"][canary["step_index"]])
        return {"baseline": 100 - p, "candidate": p}

    # --- start ---------------------------------------------------------------------------------
    def start(self, project_id: str, *, gateway_alias: str, model: str, baseline_version: int,
              candidate_version: int, steps: list[int] | None = None, step_duration_s: int = 300,
              min_requests: int = 50, gates: dict[str, Any] | None = None, suite: dict[str, Any] | None = None,
              promote_alias: str = "champion", alert_rule: str | None = None, start: bool = True,
              actor: str | None = None) -> dict[str, Any]:
        """Create a canary and (``start``) split the alias at the first step."""
        if baseline_version == candidate_version:
            raise BadRequest(f"baseline and candidate are both version {baseline_version} of {model!r}; a canary "
                             "compares two different versions",
                             details=[{"field": "candidate", "message": "same as the baseline"}])
        steps_ = check_steps(list(steps or DEFAULT_STEPS))
        g = Gates.from_dict(gates)
        for v in (baseline_version, candidate_version):
            ver = self.store.models.get_version(project_id, model, v)  # 404 naming the versions it has
            if ver["status"] == "archived":
                raise Conflict(f"version {v} of model {model!r} is archived; unarchive it or pick another")
        if alert_rule and self.store.alerts.get_rule(project_id, alert_rule) is None:
            raise NotFound(f"no alert rule {alert_rule!r} in this project; create one on /alerts (or leave "
                           f"alert_rule out: rollbacks then raise the {DEFAULT_ALERT_RULE!r} rule)",
                           details=[{"field": "alert_rule", "message": "unknown alert rule"}])
        original = self.stored_alias(project_id, gateway_alias)
        now = self.clock()
        fields: dict[str, Any] = {
            "gateway_alias": gateway_alias, "model_name": model, "baseline_version": baseline_version,
            "candidate_version": candidate_version, "steps": steps_, "step_index": 0,
            "step_duration_s": int(step_duration_s), "min_requests": int(min_requests), "gates": g.to_dict(),
            "suite": suite, "status": "running" if start else "pending", "promote_alias": promote_alias,
            "alert_rule": alert_rule, "original_spec": original,
            "step_started_at": now if start else None, "next_check_at": now if start else None,
        }
        spec = self.split_spec(fields, steps_[0])
        detail = {"baseline": baseline_version, "candidate": candidate_version, "steps": steps_,
                  "weights": {"baseline": 100 - steps_[0], "candidate": steps_[0]} if start else None,
                  "gates": g.to_dict(), "suite": _suite_summary(suite)}
        row = self.repo.create(project_id, fields, actor=actor, event=detail,
                               on_created=self._writer(project_id, gateway_alias, spec) if start else None)
        if start:
            self.invalidate(project_id)
            metrics.observe_transition("start")
        log.info("canary %s started: %s v%d -> v%d on gateway alias %s", row["id"], model, baseline_version,
                 candidate_version, gateway_alias)
        return dict(row)

    # --- changes by hand -----------------------------------------------------------------------
    def _active(self, project_id: str, canary_id: str, statuses: tuple[str, ...], verb: str) -> dict[str, Any]:
        c = self.repo.get(project_id, canary_id)
        if c["status"] not in statuses:
            raise Conflict(f"canary {canary_id} is {c['status']}; only a {' or '.join(statuses)} canary can be "
                           f"{verb}", details=[{"field": "status", "status": c["status"]}])
        return dict(c)

    def pause(self, project_id: str, canary_id: str, *, actor: str | None) -> dict[str, Any]:
        """Stop checking (no step, no automatic rollback); the alias keeps its current split."""
        c = self._active(project_id, canary_id, ("running",), "paused")
        if not self.repo.transition(project_id, canary_id, expect_status="running", changes={"status": "paused"},
                                    action="pause", detail={"weights": self.weights(c)}, actor=actor):
            raise Conflict(f"canary {canary_id} changed meanwhile; reload it and retry")
        metrics.observe_transition("pause")
        return dict(self.repo.get(project_id, canary_id))

    def resume(self, project_id: str, canary_id: str, *, actor: str | None) -> dict[str, Any]:
        """A paused canary runs again, its step's clock restarted; a pending one starts."""
        c = self._active(project_id, canary_id, ("paused", "pending"), "resumed")
        now = self.clock()
        changes = {"status": "running", "step_started_at": now, "next_check_at": now}
        write = None
        if c["status"] == "pending":
            write = self._writer(project_id, c["gateway_alias"], self.split_spec(c, c["steps"][c["step_index"]]))
        ok = self.repo.transition(project_id, canary_id, expect_status=c["status"], changes=changes, action="resume",
                                  detail={"weights": self.weights({**c, "status": "running"})}, actor=actor,
                                  on_changed=write)
        if not ok:
            raise Conflict(f"canary {canary_id} changed meanwhile; reload it and retry")
        self.invalidate(project_id)
        metrics.observe_transition("resume")
        return dict(self.repo.get(project_id, canary_id))

    def abort(self, project_id: str, canary_id: str, *, actor: str | None, reason: str | None = None
              ) -> dict[str, Any]:
        """Stop the canary and put the gateway alias back exactly as it was before it started."""
        from podium.store.repos.canaries import ACTIVE

        c = self._active(project_id, canary_id, ACTIVE, "aborted")
        write = self._writer(project_id, c["gateway_alias"], dict(c["original_spec"] or {}))
        why = reason or f"aborted by {actor or 'someone'}"
        if not self.repo.transition(project_id, canary_id, expect_status=c["status"],
                                    changes={"status": "aborted", "reason": why, "ended_at": self.clock()},
                                    action="abort", detail={"reason": why}, actor=actor, on_changed=write):
            raise Conflict(f"canary {canary_id} changed meanwhile; reload it and retry")
        self.invalidate(project_id)
        metrics.observe_transition("abort")
        return dict(self.repo.get(project_id, canary_id))

    def rollback(self, project_id: str, canary_id: str, *, actor: str | None, reason: str | None = None,
                 check: dict[str, Any] | None = None, automatic: bool = False,
                 expect_step: int | None = None) -> dict[str, Any] | None:
        """The alias serves the baseline alone; status ``rolled_back``. An automatic rollback (a
        breach) also raises an alert. None when the canary changed meanwhile (automatic only)."""
        from podium.store.repos.canaries import ACTIVE

        c = dict(self.repo.get(project_id, canary_id))
        if automatic and c["status"] != "running":  # paused or ended since the check began
            return None
        if c["status"] not in ACTIVE:
            raise Conflict(f"canary {canary_id} is {c['status']}; only an active canary (pending, running, paused) "
                           "can be rolled back", details=[{"field": "status", "status": c["status"]}])
        why = reason or f"rolled back by {actor or 'someone'}"
        write = self._writer(project_id, c["gateway_alias"], self.single_spec(c, c["baseline_version"]))
        detail: dict[str, Any] = {"reason": why, "automatic": automatic, "weights_before": self.weights(c),
                                  "weights": {"baseline": 100, "candidate": 0}}
        if check is not None:
            detail["check"] = check
        ok = self.repo.transition(project_id, canary_id, expect_status=c["status"], expect_step=expect_step,
                                  changes={"status": "rolled_back", "reason": why, "ended_at": self.clock(),
                                           **({"last_check": check} if check else {})},
                                  action="rollback", detail=detail, actor=actor, on_changed=write)
        if not ok:
            if automatic:
                return None
            raise Conflict(f"canary {canary_id} changed meanwhile; reload it and retry")
        self.invalidate(project_id)
        metrics.observe_transition("rollback")
        log.warning("canary %s rolled back (%s): %s", canary_id, "automatic" if automatic else actor, why)
        c = dict(self.repo.get(project_id, canary_id))
        if automatic:
            try:
                self.raise_alert(project_id, c, why, check)
            except Exception:  # the rollback stands; the alert failure is in the log and the event
                log.exception("canary %s: could not raise the rollback alert", canary_id)
                self.repo.add_event(project_id, canary_id, "alert", {"error": "the alert could not be raised; see "
                                                                              "the worker's log"},
                                    actor=f"canary:{canary_id}")
        return c

    def promote(self, project_id: str, canary_id: str, *, actor: str | None, reason: str | None = None,
                expect_status: tuple[str, ...] | None = None, expect_step: int | None = None,
                check: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The registry alias ``promote_alias`` -> candidate, the gateway alias serves the candidate
        alone, status ``promoted``. None when the canary changed meanwhile (the job's call)."""
        from podium.store.repos.canaries import ACTIVE

        c = dict(self.repo.get(project_id, canary_id))
        statuses = expect_status or ACTIVE
        if c["status"] not in statuses:
            if expect_status is not None:
                return None
            raise Conflict(f"canary {canary_id} is {c['status']}; only an active canary can be promoted",
                           details=[{"field": "status", "status": c["status"]}])
        why = reason or f"promoted by {actor or 'someone'}"
        write = self._writer(project_id, c["gateway_alias"], self.single_spec(c, c["candidate_version"]))
        detail: dict[str, Any] = {"reason": why, "registry_alias": c["promote_alias"],
                                  "version": c["candidate_version"], "weights": {"baseline": 0, "candidate": 100}}
        if check is not None:
            detail["check"] = check
        ok = self.repo.transition(project_id, canary_id, expect_status=c["status"], expect_step=expect_step,
                                  changes={"status": "promoted", "reason": why, "ended_at": self.clock(),
                                           **({"last_check": check} if check else {})},
                                  action="promote", detail=detail, actor=actor, on_changed=write)
        if not ok:
            if expect_status is not None:
                return None
            raise Conflict(f"canary {canary_id} changed meanwhile; reload it and retry")
        self.invalidate(project_id)
        # The registry's own history records the move (actor canary:<id>), like any alias move.
        try:
            self.store.models.set_alias(project_id, c["model_name"], c["promote_alias"], c["candidate_version"],
                                        actor=f"canary:{canary_id}", comment=f"canary {canary_id} promoted "
                                        f"v{c['candidate_version']} on gateway alias {c['gateway_alias']}")
        except Exception as e:  # the gateway serves the candidate; say why the registry alias did not move
            log.exception("canary %s: could not move registry alias %s", canary_id, c["promote_alias"])
            self.repo.add_event(project_id, canary_id, "promote", {
                "error": f"registry alias {c['promote_alias']!r} not moved: {getattr(e, 'message', e)}; move it "
                         f"with `podium registry alias {c['model_name']} {c['promote_alias']} "
                         f"{c['candidate_version']}`"}, actor=f"canary:{canary_id}")
        metrics.observe_transition("promote")
        log.info("canary %s promoted %s v%d", canary_id, c["model_name"], c["candidate_version"])
        return dict(self.repo.get(project_id, canary_id))

    # --- the worker's check ----------------------------------------------------------------------
    def check(self, canary: dict[str, Any]) -> str:
        """One round for a claimed running canary: measure, judge, then hold, step, promote or
        roll back. Returns what it did: ``wait``, ``pass``, ``step``, ``promote``, ``rollback``
        (``aborted`` when its gateway alias was deleted meanwhile: nothing left to steer)."""
        try:
            return self._check(canary)
        except NotFound as e:
            if "was deleted while the canary ran" not in e.message:
                raise
            pid, cid = canary["project_id"], canary["id"]
            self.repo.transition(pid, cid, expect_status="running",
                                 changes={"status": "aborted", "reason": e.message, "ended_at": self.clock()},
                                 action="abort", detail={"reason": e.message}, actor=f"canary:{cid}")
            metrics.observe_transition("abort")
            log.warning("canary %s aborted: %s", cid, e.message)
            return "aborted"

    def _check(self, canary: dict[str, Any]) -> str:
        pid, cid = canary["project_id"], canary["id"]
        now = self.clock()
        since = canary["step_started_at"] or canary["created_at"]
        i = int(canary["step_index"])
        steps = list(canary["steps"])
        stats = measure(self.repo, pid, canary["model_name"],
                        (canary["baseline_version"], canary["candidate_version"]), since,
                        alias=canary["gateway_alias"])
        b, c = stats[canary["baseline_version"]], stats[canary["candidate_version"]]
        expected = expected_scores(self.repo, pid, canary["model_name"], canary["baseline_version"],
                                   canary["created_at"])
        result = judge(Gates.from_dict(canary["gates"]), b, c, int(canary["min_requests"]), expected)
        elapsed = (now - since).total_seconds()
        due = elapsed >= int(canary["step_duration_s"])
        verdict = result["verdict"]
        metrics.observe_check(verdict)
        check = {"at": now.isoformat(), "step_index": i, "percent": steps[i], "since": since.isoformat(),
                 "elapsed_s": round(elapsed, 1), "step_duration_s": int(canary["step_duration_s"]),
                 "verdict": verdict, "rows": result["rows"], "reasons": result["reasons"],
                 "baseline": b.to_dict(), "candidate": c.to_dict()}
        actor = f"canary:{cid}"
        if verdict == "breach":
            done = self.rollback(pid, cid, actor=actor, reason="; ".join(result["reasons"]), check=check,
                                 automatic=True, expect_step=i)
            return "rollback" if done is not None else "changed"
        if verdict == "pass" and due:
            if i + 1 >= len(steps) - 1:
                done = self.promote(pid, cid, actor=actor, expect_status=("running",), expect_step=i, check=check,
                                    reason=f"every step passed its gates ({', '.join(f'{s}%' for s in steps[:-1])})")
                return "promote" if done is not None else "changed"
            nxt = steps[i + 1]
            c_row = {**canary, "step_index": i + 1}
            ok = self.repo.transition(pid, cid, expect_status="running", expect_step=i,
                                      changes={"step_index": i + 1, "step_started_at": now, "last_check": check},
                                      action="step", detail={"from": steps[i], "to": nxt, "check": check,
                                                             "weights": {"baseline": 100 - nxt, "candidate": nxt}},
                                      actor=actor, on_changed=self._writer(pid, canary["gateway_alias"],
                                                                            self.split_spec(c_row, nxt)))
            if ok:
                self.invalidate(pid)
                metrics.observe_transition("step")
                log.info("canary %s: step %d%% -> %d%%", cid, steps[i], nxt)
                return "step"
            return "changed"
        before = (canary.get("last_check") or {})
        if before.get("verdict") != verdict or before.get("step_index") != i:
            note = check if verdict == "pass" or not due else {**check, "hold": (
                f"the step's {canary['step_duration_s']} s are up but the candidate has {c.requests} of the "
                f"{canary['min_requests']} requests the gates need" if c.requests < int(canary["min_requests"])
                else f"the step's {canary['step_duration_s']} s are up; waiting for "
                     + "; ".join(result["waiting"]))}
            # a compare-and-set: a person may have promoted, paused or rolled back meanwhile
            if not self.repo.transition(pid, cid, expect_status="running", expect_step=i,
                                        changes={"last_check": note}, action="check", detail=note, actor=actor):
                return "changed"
        else:
            self.repo.save_check(pid, cid, check, expect_step=i)
        return "wait" if verdict == "wait" else "pass"

    # --- the alert a rollback raises -----------------------------------------------------------
    def alert_rule(self, project_id: str, canary: dict[str, Any]) -> dict[str, Any]:
        ref = canary.get("alert_rule")
        rule = self.store.alerts.get_rule(project_id, ref or DEFAULT_ALERT_RULE)
        if rule is not None:
            return dict(rule)
        now = self.clock()
        fields = {"name": DEFAULT_ALERT_RULE, "enabled": False, "severity": "critical",
                  "description": "Raised when a canary deployment rolls back (podium deploy canary). It is not "
                                 "evaluated on a schedule (keep it disabled); add channels to be notified.",
                  "condition": {"metric": "traces", "agg": "count", "filters": {}}, "kind": "threshold", "op": ">",
                  "threshold": 1e15, "params": {}, "window_s": 300, "min_samples": 0, "cooldown_s": 0,
                  "renotify_s": 0, "eval_interval_s": 300, "channels": []}
        try:
            return dict(self.store.alerts.create_rule(project_id, fields, now=now, actor="canary"))
        except Conflict:  # another worker created it first
            return dict(self.store.alerts.get_rule(project_id, DEFAULT_ALERT_RULE) or {})

    def raise_alert(self, project_id: str, canary: dict[str, Any], reason: str,
                    check: dict[str, Any] | None) -> dict[str, Any]:
        """Send the rollback through the alert rule's channels and record it in the rule's history
        (status ``fired``), like an alert rule that fired; returns the alert event."""
        rule = self.alert_rule(project_id, canary)
        try:
            project = str(self.store.projects.get_project(project_id).name)
        except Exception:
            project = project_id
        now = self.clock()
        cid = canary["id"]
        value = ((check or {}).get("candidate") or {}).get("error_rate")
        alert = Alert(rule=rule["name"], project=project, severity=rule["severity"], status="firing",
                      title=f"Canary {cid} rolled back: {canary['model_name']} v{canary['candidate_version']} on "
                            f"gateway alias {canary['gateway_alias']}",
                      summary=reason, value=value, threshold=None,
                      labels={"canary": cid, "gateway_alias": canary["gateway_alias"], "model": canary["model_name"],
                              "baseline": str(canary["baseline_version"]),
                              "candidate": str(canary["candidate_version"])},
                      started_at=now, url=f"{self.base_url}/deployments/{cid}",
                      dedup_key=f"podium/{project_id}/canary/{cid}")
        deliveries = deliver(rule, alert)
        alert_metrics.observe_deliveries(deliveries)
        alert_metrics.observe_event("fired")
        event = self.store.alerts.add_event(project_id, rule["id"], {
            "status": "fired", "episode": rule.get("episode") or 0, "value": value, "threshold": None,
            "message": f"canary {cid} rolled back: {reason}", "actor": f"canary:{cid}",
            "deliveries": [d.to_dict() for d in deliveries]}, now=now)
        self.repo.add_event(project_id, cid, "alert", {"rule": rule["name"], "rule_id": rule["id"],
                                                       "event_id": event["id"], "severity": rule["severity"],
                                                       "deliveries": [d.to_dict() for d in deliveries]},
                            actor=f"canary:{cid}")
        return dict(event)


def _suite_summary(suite: dict[str, Any] | None) -> dict[str, Any] | None:
    if not suite:
        return None
    return {k: suite.get(k) for k in ("suite", "passed", "regressed", "baseline_experiment", "candidate_experiment")
            if k in suite}

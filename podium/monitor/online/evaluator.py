"""The evaluator: scores a claimed batch of ``online_eval`` jobs.

:meth:`OnlineEvaluator.handle` is the :class:`~podium.monitor.worker.QueueConsumer` handler.
For a batch (200 by default) it loads the rules and the traces in bulk (spans too when a rule
targets spans or maps a span path), builds each item's fields through the rule's mapping, runs
every scorer over the rule's items (deterministic scorers as one batch, judges in parallel
under their model's AIMD gate), and writes the scores in one transaction with
``source="online"`` and ids ``uuid5(rule, trace, span, score name)``, so a redelivered job
rewrites the same rows. A scorer failing on one trace (a missing field, an exception, a judge
that gave no verdict) is counted as a failure of that rule (stats, ``/metrics``) and logged;
the trace's other scores and the batch's other traces are written. Jobs of deleted or disabled
rules and of deleted traces are acked without work.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podium.core.records import ScoreIn
from podium.errors import ValidationFailed
from podium.evals import Score
from podium.monitor.online import metrics
from podium.monitor.online.judge import GatewayJudges, JudgeUsage
from podium.monitor.online.mapping import Path, check_mapping, resolve
from podium.monitor.online.scorers import Built, build_scorers
from podium.monitor.queue.base import QueuedJob
from podium.store import Store
from podium.store.repos.ingest import IngestBatch, ScoreRow
from podium.store.repos.score_configs import ScoreConfigRepo, ScoreConfigs

__all__ = ["SCORE_NAMESPACE", "SOURCE", "OnlineEvaluator", "score_id"]

logger = logging.getLogger("podium.monitor.online")

SOURCE = "online"
SCORE_NAMESPACE = uuid.UUID("6f1d3c2e-0b7a-5c1e-9a34-0d5e1f0a7b21")
_MAX_COMMENT = 10_000


def score_id(rule_id: str, trace_id: str, span_id: str | None, name: str) -> str:
    return str(uuid.uuid5(SCORE_NAMESPACE, f"{rule_id}\x1f{trace_id}\x1f{span_id or ''}\x1f{name}"))


@dataclass
class _Compiled:
    rule: dict[str, Any]
    scorers: list[Built]
    mapping: dict[str, Path]
    usage: JudgeUsage = field(default_factory=JudgeUsage)

    @property
    def needs_spans(self) -> bool:
        return (self.rule["target"] or {}).get("type") == "span" or any(p.needs_spans for p in self.mapping.values())


def _json_safe(v: Any) -> Any:
    try:
        return json.loads(json.dumps(v, default=str))
    except (TypeError, ValueError):
        return str(v)


class OnlineEvaluator:
    """The handler of ``online_eval`` jobs (see the module docstring)."""

    def __init__(self, store: Store, judges: GatewayJudges | None = None, *, default_model: str = "local",
                 judge_threads: int = 8, queue: Any = None, lease_s: float = 300.0, executor: Any = None) -> None:
        self.store = store
        # PODIUM_EXECUTOR=ray: a backfill batch's deterministic scorers run as Ray tasks (docs/ray.md)
        self.executor = executor
        self.judges = judges
        # judges may outlast a lease: the batch's leases are extended while they run (queue.extend)
        self.queue = queue
        self.lease_s = lease_s
        self._batch: list[str] = []
        self.default_model = default_model
        self.judge_threads = judge_threads
        self._compiled: dict[tuple[str, str], tuple[datetime, _Compiled]] = {}
        self._pool: ThreadPoolExecutor | None = None

    # --- rules -----------------------------------------------------------------------------------
    def _compile(self, rule: dict[str, Any]) -> _Compiled:
        key = (rule["project_id"], rule["id"])
        hit = self._compiled.get(key)
        if hit is not None and hit[0] == rule["updated_at"]:
            return hit[1]
        usage = hit[1].usage if hit is not None else JudgeUsage()
        chat = self.judges.chat_for(rule["project_id"], rule["id"], usage) if self.judges is not None else None
        target = (rule["target"] or {}).get("type", "trace")
        c = _Compiled(rule, build_scorers(rule["scorers"], chat=chat or _no_gateway, default_model=self.default_model),
                      check_mapping(rule.get("mapping"), target=target), usage)
        self._compiled[key] = (rule["updated_at"], c)
        return c

    # --- the handler -----------------------------------------------------------------------------
    def handle(self, jobs: list[QueuedJob]) -> dict[str, str]:
        """Score a batch; returns ``{job_id: error}`` for jobs to retry (none when scorers fail
        per trace: those are counted, not retried)."""
        self._batch = [j.id for j in jobs]
        by_rule: dict[tuple[str, str], list[QueuedJob]] = {}
        for j in jobs:
            rid = j.payload.get("rule_id")
            if isinstance(rid, str) and isinstance(j.payload.get("trace_id"), str):
                by_rule.setdefault((j.project_id, rid), []).append(j)
        rules = self.store.online_evals.get_many(by_rule)
        by_project: dict[str, list[tuple[_Compiled, list[QueuedJob]]]] = {}
        failures: dict[str, str] = {}
        for key, group in by_rule.items():
            rule = rules.get(key)
            if rule is None or not rule["enabled"]:
                if rule is not None:  # disabled since: dropped, and no longer in its backlog
                    self.store.online_evals.count(key[0], key[1], matched=-len(group))
                continue
            try:
                compiled = self._compile(rule)
            except Exception as e:  # a rule that no longer builds (a plugin uninstalled): retry later
                logger.warning("online rule %s cannot be built: %s", rule["id"], e)
                failures.update({j.id: f"rule cannot be built: {e}" for j in group})
                continue
            by_project.setdefault(key[0], []).append((compiled, group))
        rows: list[ScoreRow] = []
        counts: list[tuple[_Compiled, dict[str, float]]] = []
        failed_kinds: dict[str, int] = {}
        latency: list[tuple[str, float]] = []
        lags: list[float] = []
        evaluated = 0
        now = datetime.now(UTC)
        for pid, groups in by_project.items():
            trace_ids = sorted({j.payload["trace_id"] for _, g in groups for j in g})
            traces = self.store.online_evals.load_traces(pid, trace_ids)
            spans = (self.store.online_evals.load_spans(pid, trace_ids)
                     if any(c.needs_spans for c, _ in groups) else {})
            for compiled, group in groups:
                n, fails, lat = self._rule_batch(compiled, group, traces, spans, rows, now)
                gone = len({j.payload["trace_id"] for j in group if j.payload["trace_id"] not in traces})
                evaluated += n
                for kind, k in fails.items():
                    failed_kinds[kind] = failed_kinds.get(kind, 0) + k
                latency += lat
                rule_lags = [now.timestamp() - float(j.payload.get("t", now.timestamp())) for j in group
                             if j.payload["trace_id"] in traces and not j.payload.get("backfill")]
                lags += rule_lags
                calls, cost = compiled.usage.take()
                counts.append((compiled, {"evaluated": n, "matched": -gone, "failed": sum(fails.values()),
                                          "judge_calls": calls,
                                          "judge_cost": cost, "lag_s_sum": sum(max(x, 0.0) for x in rule_lags)}))
        rows, refused = self._conform(rows)
        if refused:
            failed_kinds["score_config"] = sum(refused.values())
            for compiled, inc in counts:
                inc["failed"] += refused.get(compiled.rule["id"], 0)
        if rows:
            self.store.ingest.write(IngestBatch(scores=rows))
        for compiled, inc in counts:
            self.store.online_evals.count(compiled.rule["project_id"], compiled.rule["id"], at=now, **inc)
        metrics.observe_batch(evaluated=evaluated, failures=failed_kinds, latency=latency, lags=lags,
                              judge_calls=int(sum(c[1]["judge_calls"] for c in counts)),
                              judge_cost=sum(c[1]["judge_cost"] for c in counts))
        return failures

    def _items(self, c: _Compiled, group: Sequence[QueuedJob], traces: dict[str, dict[str, Any]],
               spans: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str | None, dict[str, Any]]]:
        """``(trace_id, span_id, fields)`` per evaluated trace or span."""
        target = c.rule["target"] or {}
        out: list[tuple[str, str | None, dict[str, Any]]] = []
        seen: set[str] = set()
        for j in group:
            tid = j.payload["trace_id"]
            trace = traces.get(tid)
            if trace is None or tid in seen:
                continue  # deleted since, or twice in one batch
            seen.add(tid)
            tspans = spans.get(tid, [])
            if target.get("type") == "span":
                for s in tspans:
                    if (target.get("name") and s["name"] != target["name"]) or (
                            target.get("kind") and s["kind"] != target["kind"]):
                        continue
                    out.append((tid, s["id"], self._fields(c, trace, tspans, s)))
            else:
                out.append((tid, None, self._fields(c, trace, tspans, None)))
        return out

    @staticmethod
    def _fields(c: _Compiled, trace: dict[str, Any], tspans: list[dict[str, Any]],
                span: dict[str, Any] | None) -> dict[str, Any]:
        return {f: resolve(p, trace, tspans, span) for f, p in c.mapping.items()}

    def _rule_batch(self, c: _Compiled, group: Sequence[QueuedJob], traces: dict[str, dict[str, Any]],
                    spans: dict[str, list[dict[str, Any]]], rows: list[ScoreRow],
                    now: datetime) -> tuple[int, dict[str, int], list[tuple[str, float]]]:
        items = self._items(c, group, traces, spans)
        n_traces = len({j.payload["trace_id"] for j in group if j.payload["trace_id"] in traces})
        if not items:
            return n_traces, {}, []
        fields = [f for _, _, f in items]
        fails: dict[str, int] = {}
        lat: list[tuple[str, float]] = []
        rule = c.rule
        for b in c.scorers:
            t0 = time.perf_counter()
            if b.kind == "judge":
                results = self._judge_all(b, fields)
            else:
                try:
                    results = self._deterministic(b, fields, group)
                except Exception as e:  # a configuration error: every item alike
                    results = [e] * len(fields)
            lat.append((b.kind, time.perf_counter() - t0))
            for (tid, sid, _), res in zip(items, results, strict=True):
                if not isinstance(res, Score):
                    fails[b.kind] = fails.get(b.kind, 0) + 1
                    logger.info("online rule %s: scorer %s failed on trace %s: %s", rule["name"], b.scorer.name,
                                tid, res)
                    continue
                rows.append(self._row(rule, tid, sid, res, now))
        return n_traces, fails, lat

    def _deterministic(self, b: Built, fields: list[dict[str, Any]], group: Sequence[QueuedJob]) -> list[Any]:
        """A deterministic scorer over the items: on the executor when the batch holds backfill
        jobs and one is set (live traffic stays here, for its latency); scores come back here and
        are written by this process. A scorer Ray cannot ship (pickle) is run here instead."""
        if self.executor is not None and any(j.payload.get("backfill") for j in group):
            try:
                return self.executor.map(_ScoreBatch(b.scorer), fields)
            except Exception as e:
                logger.warning("online scorer %s could not run on the %s executor (%s); scoring here",
                               b.scorer.name, getattr(self.executor, "name", "?"), e)
        return list(b.scorer.score_batch(fields))

    def _judge_all(self, b: Built, fields: list[dict[str, Any]]) -> list[Any]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.judge_threads, thread_name_prefix="podium-online-judge")
        futures = [self._pool.submit(b.scorer.score_batch, [f]) for f in fields]
        extend = getattr(self.queue, "extend", None)
        pending = set(futures)
        while extend is not None and pending:
            # the heartbeat starts with the judging (preparing the batch may have used part of the
            # lease), then beats every third of it while judges are still out
            try:
                extend(self._batch, lease_s=self.lease_s)
            except Exception:
                logger.warning("could not extend the leases of a judged batch", exc_info=True)
            _done, pending = wait(futures, timeout=self.lease_s / 3)
        out: list[Any] = []
        for fut in futures:
            try:
                out.append(fut.result()[0])
            except Exception as e:
                out.append(e)
        return out

    def _conform(self, rows: list[ScoreRow]) -> tuple[list[ScoreRow], dict[str, int]]:
        """Check online scores against the project's score configs, as every other score path is
        checked: a score whose name has a config is stored in the config's type; one the config
        refuses (out of range, not a category) is dropped, logged and counted as a failure of its
        rule (``{rule_id: refused}``), never stored untyped."""
        configs: dict[str, ScoreConfigs] = {}
        out: list[ScoreRow] = []
        refused: dict[str, int] = {}
        for r in rows:
            pid = r["project_id"]
            if pid not in configs:
                configs[pid] = ScoreConfigRepo(self.store.engine).snapshot(pid)
            if not configs[pid].by_name:
                out.append(r)
                continue
            dt = r["data_type"]
            value: Any = r["string_value"] if dt == "categorical" else (
                bool(r["value"]) if dt == "boolean" else r["value"])
            try:
                checked = configs[pid].check(ScoreIn.model_construct(name=r["name"], value=value, config_id=None))
            except ValidationFailed as e:
                rule_id = str((r["metadata"] or {}).get("online_eval_rule", ""))
                refused[rule_id] = refused.get(rule_id, 0) + 1
                logger.warning("online rule %s: score %r on trace %s refused by its score config: %s",
                               rule_id, r["name"], r["trace_id"], e)
                continue
            if checked is not None:
                r = ScoreRow(**{**r, "data_type": checked.data_type, "value": checked.value,
                                "string_value": checked.string_value})
            out.append(r)
        return out, refused

    @staticmethod
    def _row(rule: dict[str, Any], trace_id: str, span_id: str | None, s: Score, now: datetime) -> ScoreRow:
        v = s.value
        if isinstance(v, bool):
            dt, num, text = "boolean", 1.0 if v else 0.0, None
        elif isinstance(v, int | float):
            dt, num, text = "numeric", float(v), None
        else:
            dt, num, text = "categorical", None, str(v)
        meta = {"online_eval_rule": rule["id"], "rule_name": rule["name"], "passed": s.passed}
        if s.metadata:
            meta["scorer"] = _json_safe(dict(s.metadata))
        comment = f"online rule {rule['name']!r}" + (f": {s.explanation}" if s.explanation else "")
        return ScoreRow(project_id=rule["project_id"], id=score_id(rule["id"], trace_id, span_id, s.name),
                        trace_id=trace_id, span_id=span_id, session_id=None, name=s.name, data_type=dt, value=num,
                        string_value=text, source=SOURCE, comment=comment[:_MAX_COMMENT], metadata=meta,
                        timestamp=now)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


@dataclass
class _ScoreBatch:
    """The task body of a backfill batch on an executor: one scorer over a batch of fields."""

    scorer: Any

    def __call__(self, rows: list[dict[str, Any]]) -> list[Any]:
        return list(self.scorer.score_batch(rows))


def _no_gateway(messages: Any, **kw: Any) -> str:
    raise RuntimeError("no gateway in this worker: LLM judges need one (run the embedded worker or `podium worker`)")

"""The Store: one engine and the repositories over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine

from podium.store.engine import make_engine
from podium.store.migrate import upgrade
from podium.store.repos.alerts import AlertRepo
from podium.store.repos.annotations import AnnotationRepo
from podium.store.repos.attributions import AttributionRepo
from podium.store.repos.audit import AuditRepo
from podium.store.repos.canaries import CanaryRepo
from podium.store.repos.dashboard import DashboardRepo
from podium.store.repos.dashboards import DashboardsRepo
from podium.store.repos.drift import DriftRepo
from podium.store.repos.eval_sweeps import EvalSweepRepo
from podium.store.repos.evals import EvalRepo
from podium.store.repos.gateway import GatewayRepo
from podium.store.repos.guardrails import GuardrailRepo
from podium.store.repos.ingest import IngestRepo
from podium.store.repos.jobs import JobRepo
from podium.store.repos.lifecycle import LifecycleRepo
from podium.store.repos.metrics import MetricsRepo
from podium.store.repos.models import ModelRepo
from podium.store.repos.online_evals import OnlineEvalRepo
from podium.store.repos.prices import PriceRepo
from podium.store.repos.projects import ProjectRepo
from podium.store.repos.prompts import PromptRepo
from podium.store.repos.redaction import RedactionRepo
from podium.store.repos.scores import ScoreRepo
from podium.store.repos.traces import TraceRepo
from podium.store.repos.training import TrainingRepo
from podium.store.repos.users import UserRepo

if TYPE_CHECKING:
    from podium.store.columnar.client import ColumnarClient

__all__ = ["Store"]


class Store:
    def __init__(self, engine: Engine, columnar: ColumnarClient | None = None) -> None:
        self.engine = engine
        self.columnar = columnar  # spans, traces and scores on ClickHouse when set (docs/columnar.md)
        self.projects = ProjectRepo(engine)
        self.ingest = IngestRepo(engine)
        self.traces = TraceRepo(engine)
        self.scores = ScoreRepo(engine)
        self.metrics = MetricsRepo(engine)  # metric queries: charts and alert rules
        self.dashboard = DashboardRepo(engine)  # the web UI's aggregates (home dashboard, users, sessions)
        if columnar is not None:
            from podium.store.columnar import (
                ColumnarDashboardRepo,
                ColumnarIngestRepo,
                ColumnarMetricsRepo,
                ColumnarScoreRepo,
                ColumnarTraceRepo,
            )

            self.ingest = ColumnarIngestRepo(columnar)
            self.traces = ColumnarTraceRepo(engine, columnar)
            self.scores = ColumnarScoreRepo(engine, columnar)
            self.metrics = ColumnarMetricsRepo(columnar)
            self.dashboard = ColumnarDashboardRepo(engine, columnar)
        self.prices = PriceRepo(engine)
        self.gateway = GatewayRepo(engine)
        self.prompts = PromptRepo(engine)
        self.evals = EvalRepo(engine)
        self.dashboards = DashboardsRepo(engine)  # saved custom dashboards (their charts read self.metrics)
        self.annotations = AnnotationRepo(engine)
        self.drift = DriftRepo(engine)
        self.online_evals = OnlineEvalRepo(engine)
        self.alerts = AlertRepo(engine)
        self.models = ModelRepo(engine)  # the model registry (podium.registry)
        self.jobs = JobRepo(engine)  # the worker's job queue (podium.monitor.queue)
        self.canaries = CanaryRepo(engine)  # canary deployments and their audit trail (podium.monitor.canary)
        self.training = TrainingRepo(engine)  # fine-tuning runs, their steps and sweeps (podium.tune)
        self.eval_sweeps = EvalSweepRepo(engine)  # eval sweeps and their trials (podium.experiments.sweep)
        self.lifecycle = LifecycleRepo(engine)  # retention and data-subject requests (podium.governance)
        self.users = UserRepo(engine)  # people: users, memberships, sessions, invitations (podium.governance)
        self.redaction = RedactionRepo(engine)  # redaction rules applied before storage (podium.governance.redaction)
        self.audit = AuditRepo(engine)  # the audit log, one hash chain (podium.governance.audit)
        self.attributions = AttributionRepo(engine)  # which chunks drove an answer (podium.rag.attribution)
        self.guardrails = GuardrailRepo(engine)  # the guardrails page's numbers (decision spans, marks)
        if columnar is not None:  # their span/trace/score reads and deletes on ClickHouse too
            from podium.store.columnar import (
                ColumnarAnnotationRepo,
                ColumnarCanaryRepo,
                ColumnarDriftRepo,
                ColumnarEvalRepo,
                ColumnarEvalSweepRepo,
                ColumnarGuardrailRepo,
                ColumnarLifecycleRepo,
                ColumnarModelRepo,
                ColumnarOnlineEvalRepo,
                ColumnarPromptRepo,
            )

            self.prompts = ColumnarPromptRepo(engine, columnar)  # prompt analytics
            self.annotations = ColumnarAnnotationRepo(engine, columnar)  # targets, exports, human scores
            self.evals = ColumnarEvalRepo(engine, columnar)  # experiment scores on their traces
            self.canaries = ColumnarCanaryRepo(engine, columnar)  # the gates' live reads
            self.models = ColumnarModelRepo(engine, columnar)  # lineage: served traffic
            self.eval_sweeps = ColumnarEvalSweepRepo(engine, columnar)  # a trial's traffic forecast
            self.guardrails = ColumnarGuardrailRepo(engine, columnar)
            self.drift = ColumnarDriftRepo(engine, columnar)
            self.online_evals = ColumnarOnlineEvalRepo(engine, columnar)
            self.lifecycle = ColumnarLifecycleRepo(engine, columnar)

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, columnar_url: str | None = None) -> Store:
        """``columnar_url`` (``clickhouse://...`` or ``chdb://...``): spans, traces and scores there."""
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
        columnar = None
        if columnar_url:
            from podium.store.columnar import open_columnar

            columnar = open_columnar(columnar_url, migrate=migrate)
        return cls(engine, columnar)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()
        if self.columnar is not None:
            close_ingest = getattr(self.ingest, "close", None)  # the columnar writer's settle thread
            if close_ingest is not None:
                close_ingest()
            self.columnar.close()

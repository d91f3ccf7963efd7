"""The application factory: ``create_app(settings, store=..., ingester=...)``."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI

from podium._version import __version__
from podium.config import Settings
from podium.core.tokens import tokenizer_name
from podium.gateway.service import Gateway
from podium.governance.redaction import Redactor
from podium.monitor.worker import start_embedded_worker
from podium.registry.serving import wire_gateway
from podium.server.api_docs import install_api_docs
from podium.server.audit_log import AuditLogMiddleware
from podium.server.auth import Authenticator, CsrfFormMiddleware
from podium.server.body import RefuseNulMiddleware
from podium.server.errors import install_error_handlers
from podium.server.gateway_log import GatewayLog
from podium.server.ingest import Ingester
from podium.server.metrics import install_metrics
from podium.server.routes import (
    admin,
    alerts,
    dashboards,
    drift,
    evals,
    feedback,
    gateway_admin,
    guard,
    guardrail_policies,
    ingest,
    online_evals,
    prompts,
    score_configs,
    scores,
    traces,
)
from podium.server.routes import annotations as annotation_routes
from podium.server.routes import attributions as attribution_routes
from podium.server.routes import audit as audit_routes
from podium.server.routes import collections as collection_routes
from podium.server.routes import data_lifecycle as data_lifecycle_routes
from podium.server.routes import deployments as deployment_routes
from podium.server.routes import eval_sweeps as eval_sweep_routes
from podium.server.routes import explanations as explanation_routes
from podium.server.routes import gateway as openai_routes
from podium.server.routes import langfuse as langfuse_api
from podium.server.routes import models as registry_routes
from podium.server.routes import otlp_logs as otlp_logs_routes
from podium.server.routes import redaction as redaction_routes
from podium.server.routes import training_data as training_data_routes
from podium.server.routes import training_runs as training_runs_routes
from podium.server.routes import users as user_routes
from podium.server.security_headers import SecurityHeadersMiddleware
from podium.server.state import AppState
from podium.server.ui import attributions as attributions_ui
from podium.server.ui import collections as collections_ui
from podium.server.ui import explain as explain_ui
from podium.server.ui import install_ui
from podium.server.ui.audit import router as audit_ui_router
from podium.server.ui.data_lifecycle import router as data_lifecycle_ui_router
from podium.server.ui.people import router as people_ui_router
from podium.store import Store

__all__ = ["create_app"]

logger = logging.getLogger("podium.server")


def _warm_up(freeze_gc: bool, tokenizer: bool = True) -> None:
    """Load the tokenizer (~130 ms, ~40 MiB; not in ``podium gateway``, which loads it when a count
    is first needed: podium.gateway.service.ensure_tokenizer); with ``freeze_gc``, then move everything loaded so far
    out of the garbage collector's sight, so full collections scan only what requests
    create (gen-2 collections over the start-up heap, ~160k objects with the BPE table,
    paused the event loop for 40-60 ms under load). Only for server processes: it pins
    whatever is alive at that moment for the life of the process."""
    if tokenizer:
        tokenizer_name()
    if freeze_gc:
        gc.collect()
        gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    ingester: Ingester | None = None,
    gateway: Gateway | None = None,
    mode: Literal["all", "gateway"] = "all",
    freeze_gc: bool = False,
    otlp_grpc: bool = False,
) -> FastAPI:
    """Build the app. ``store`` defaults to ``settings.resolved_database_url`` (migrated);
    the ingest writer starts and stops with the app's lifespan. ``mode="gateway"`` serves
    only the OpenAI-compatible endpoints, ``/metrics`` and health (``podium gateway``).
    ``otlp_grpc``: also serve OTLP/gRPC on ``settings.otlp_grpc_port`` (0: not served) while
    the app runs (``podium up``); ``app.state.otlp_grpc`` is the receiver (its ``port``)."""
    settings = settings or Settings()
    own_store = store is None
    store = store or Store.from_url(settings.resolved_database_url, columnar_url=settings.resolved_clickhouse_url)
    ingester = ingester or Ingester.from_settings(store.ingest, settings)
    if ingester.redactor is None:  # redaction before storage, on every ingest path (docs/governance.md)
        ingester.redactor = Redactor(store.redaction)
    state = AppState(settings=settings, store=store, ingester=ingester, auth=Authenticator(store))
    gateway_log = GatewayLog(ingester, state.prices_for)
    state.gateway = gateway or Gateway(settings, store, sink=gateway_log.record, log_room=gateway_log,
                                         prices=state.prices_for, prices_async=state.aprices_for)
    gateway_log.metrics = state.gateway.metrics  # podium_gateway_log_dropped / _buffered
    wire_gateway(state.gateway, store, settings.home_dir)  # registry:/NAME@ALIAS deployments (docs/registry.md)

    grpc_receiver = None
    if otlp_grpc and mode == "all" and settings.otlp_grpc_port:
        from podium.server.otlp_grpc import OtlpGrpcServer  # grpcio: loaded only when served

        grpc_receiver = OtlpGrpcServer(state, settings.host, settings.otlp_grpc_port)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ingester.start()
        gateway_log.start()
        await state.gateway.start()  # type: ignore[union-attr]
        state.start()  # with Redis: the key revocation channel
        # The background worker (online evaluation, drift, alerts) in this process unless PODIUM_WORKER_EMBEDDED=0
        worker = start_embedded_worker(store, settings, state.gateway) if mode == "all" else None
        _app.state.metrics.queue.worker = worker
        if grpc_receiver is not None:
            await grpc_receiver.start()
        # Load the tokenizer off the request path (~130 ms, only needed when usage is missing).
        threading.Thread(target=_warm_up, args=(freeze_gc, mode == "all"), name="podium-warmup", daemon=True).start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            if grpc_receiver is not None:
                await grpc_receiver.stop()
            state.stop()
            await state.gateway.aclose()  # type: ignore[union-attr]
            await gateway_log.stop()
            ingester.stop()
            if own_store:
                store.close()

    app = FastAPI(
        title="Podium",
        version=__version__,
        description="Tracing, prompts, evaluation and an OpenAI-compatible gateway. "
        "Errors always look like {\"error\": {\"code\", \"message\", \"details\"}}.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # /api/v1/docs: podium.server.api_docs (offline, no inline script)
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.podium = state
    app.state.otlp_grpc = grpc_receiver
    install_error_handlers(app)
    app.add_middleware(RefuseNulMiddleware)  # NUL in a URL: 400 on every database (PostgreSQL refuses it)
    # CSP, frame-ancestors, referrer policy, HSTS over TLS, PODIUM_ALLOWED_HOSTS (docs/governance.md#web-security)
    app.add_middleware(SecurityHeadersMiddleware, allowed_hosts=settings.allowed_hosts,
                       hsts_max_age=settings.hsts_max_age)
    install_api_docs(app)
    install_metrics(app, state)  # /metrics: gateway, ingestion, process; no _created series
    # The gateway's hot paths are plain ASGI endpoints (OpenAI's error format, SSE, low overhead).
    openai_routes.install(app)  # /v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings, /v1/models
    app.include_router(gateway_admin.metrics_router)
    app.include_router(admin.health_router)
    if mode == "gateway":
        openai_routes.install_fallback(app, otlp=False)  # other /v1 paths: 404/405 in OpenAI's shape
        openai_routes.install_fast_path(app, allowed_hosts=settings.allowed_hosts, hsts_max_age=settings.hsts_max_age)
        return app
    app.include_router(ingest.router, tags=["ingestion"])
    app.include_router(otlp_logs_routes.router, tags=["ingestion"])
    app.include_router(traces.router)
    app.include_router(scores.router)
    app.include_router(score_configs.router)  # typed scores: /api/v1/score-configs
    app.include_router(dashboards.router)  # /api/v1/metrics/query and /api/v1/dashboards
    app.include_router(online_evals.router)  # online evaluation rules: /api/v1/evaluation-rules
    app.include_router(alerts.router)  # alert rules and history: /api/v1/alert-rules, /api/v1/alerts
    app.include_router(drift.router)  # drift monitors: /api/v1/drift-monitors
    app.include_router(feedback.router)  # POST /api/v1/feedback: the public key alone, write-only
    app.include_router(admin.router)
    app.include_router(gateway_admin.router)
    app.include_router(guardrail_policies.router)
    app.include_router(guard.router)  # POST /api/v1/guard/scan
    app.include_router(prompts.router)
    app.include_router(evals.router)
    app.include_router(annotation_routes.router)  # /api/v1/annotation-queues: review traces, kappa, to dataset
    app.include_router(training_data_routes.router)  # /api/v1/training-data/export (docs/training-data.md)
    app.include_router(langfuse_api.router)  # Langfuse SDK compatibility under /api/public
    app.include_router(registry_routes.router)  # /api/v1/registry: registered models, versions, aliases
    app.include_router(deployment_routes.router)  # /api/v1/canaries: canary deployments (docs/canary.md)
    app.include_router(training_runs_routes.router)  # /api/v1/training-runs, /api/v1/training-sweeps
    app.include_router(eval_sweep_routes.router)  # /api/v1/eval-sweeps: fronts, decide, forecast
    app.include_router(collection_routes.router)  # /api/v1/collections: knowledge collections, search, RAG answers
    app.include_router(attribution_routes.router)  # /api/v1/traces/{id}/attributions: which chunk drove it
    app.include_router(collections_ui.router)  # /collections: UI pages (before install_ui's error handlers)
    app.include_router(attributions_ui.router)  # the trace page's Attribution form (POST /traces/{id}/attributions)
    app.include_router(explanation_routes.router)  # POST /api/v1/explanations: SHAP/LIME/occlusion/IG (docs/explain.md)
    app.include_router(explain_ui.router)  # /explain: the explanations page
    app.include_router(redaction_routes.router)  # /api/v1/redaction-rules (docs/governance.md#redaction)
    app.include_router(audit_routes.router)  # /api/v1/audit-events: the audit log (docs/governance.md)
    app.include_router(user_routes.router)  # /api/v1/members, /api/v1/invitations, /api/v1/users (docs/governance.md)
    app.include_router(people_ui_router)  # sign-in, /settings/members, /invite, /account (docs/governance.md#people)
    app.add_middleware(CsrfFormMiddleware)  # a session's form posts: note their csrf_token field (auth.csrf_ok)
    app.include_router(data_lifecycle_routes.router)  # /api/v1/retention, legal-hold, subjects (docs/governance.md)
    install_ui(app)
    app.include_router(audit_ui_router)  # /settings/audit: the audit log's page
    app.include_router(data_lifecycle_ui_router)  # /settings/retention, /settings/subjects
    app.add_middleware(AuditLogMiddleware)  # one audit event per mutating request (docs/governance.md)
    openai_routes.install_fallback(app, otlp=True)  # last: other /v1 paths answer in OpenAI's shape
    # The hot gateway endpoints skip the middleware stack (security headers kept): docs/gateway.md#overhead
    openai_routes.install_fast_path(app, allowed_hosts=settings.allowed_hosts, hsts_max_age=settings.hsts_max_age)
    return app

"""The application factory: ``create_app(settings, store=..., ingester=...)``."""

from __future__ import annotations

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
from podium.server.auth import Authenticator
from podium.server.errors import install_error_handlers
from podium.server.gateway_log import GatewayLog
from podium.server.ingest import Ingester
from podium.server.routes import admin, evals, gateway_admin, ingest, prompts, scores, traces
from podium.server.routes.gateway import ChatEndpoints, ModelsEndpoint
from podium.server.state import AppState
from podium.server.ui import install_ui
from podium.store import Store

__all__ = ["create_app"]

logger = logging.getLogger("podium.server")


def _warm_up(freeze_gc: bool) -> None:
    """Load the tokenizer (~130 ms); with ``freeze_gc``, then move everything loaded so far
    out of the garbage collector's sight, so full collections scan only what requests
    create (gen-2 collections over the start-up heap, ~160k objects with the BPE table,
    paused the event loop for 40-60 ms under load). Only for server processes: it pins
    whatever is alive at that moment for the life of the process."""
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
) -> FastAPI:
    """Build the app. ``store`` defaults to ``settings.resolved_database_url`` (migrated);
    the ingest writer starts and stops with the app's lifespan. ``mode="gateway"`` serves
    only the OpenAI-compatible endpoints, ``/metrics`` and health (``podium gateway``)."""
    settings = settings or Settings()
    own_store = store is None
    store = store or Store.from_url(settings.resolved_database_url)
    ingester = ingester or Ingester(
        store.ingest, max_items=settings.ingest_queue_max_items, write_batch=settings.ingest_write_batch
    )
    state = AppState(settings=settings, store=store, ingester=ingester, auth=Authenticator(store))
    gateway_log = GatewayLog(ingester, state.prices_for)
    state.gateway = gateway or Gateway(settings, store, sink=gateway_log.record, prices=state.prices_for)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ingester.start()
        gateway_log.start()
        await state.gateway.start()  # type: ignore[union-attr]
        # Load the tokenizer off the request path (~130 ms, only needed when usage is missing).
        threading.Thread(target=_warm_up, args=(freeze_gc,), name="podium-warmup", daemon=True).start()
        try:
            yield
        finally:
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
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.podium = state
    install_error_handlers(app)
    # The gateway's hot paths are plain ASGI endpoints (OpenAI's error format, SSE, low overhead).
    app.router.add_route("/v1/chat/completions", ChatEndpoints("chat"), methods=["POST"], include_in_schema=False)
    app.router.add_route("/v1/completions", ChatEndpoints("completion"), methods=["POST"], include_in_schema=False)
    app.router.add_route("/v1/embeddings", ChatEndpoints("embeddings"), methods=["POST"], include_in_schema=False)
    app.router.add_route("/v1/models", ModelsEndpoint(), methods=["GET"], include_in_schema=False)
    app.router.add_route("/v1/models/{model:path}", ModelsEndpoint(), methods=["GET"], include_in_schema=False)
    app.include_router(gateway_admin.metrics_router)
    app.include_router(admin.health_router)
    if mode == "gateway":
        return app
    app.include_router(ingest.router, tags=["ingestion"])
    app.include_router(traces.router)
    app.include_router(scores.router)
    app.include_router(admin.router)
    app.include_router(gateway_admin.router)
    app.include_router(prompts.router)
    app.include_router(evals.router)
    install_ui(app)
    return app

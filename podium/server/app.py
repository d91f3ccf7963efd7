"""The application factory: ``create_app(settings, store=..., ingester=...)``."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from podium._version import __version__
from podium.config import Settings
from podium.core.tokens import tokenizer_name
from podium.server.auth import Authenticator
from podium.server.errors import install_error_handlers
from podium.server.ingest import Ingester
from podium.server.routes import admin, ingest, scores, traces
from podium.server.state import AppState
from podium.store import Store

__all__ = ["create_app"]

logger = logging.getLogger("podium.server")


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    ingester: Ingester | None = None,
) -> FastAPI:
    """Build the app. ``store`` defaults to ``settings.resolved_database_url`` (migrated);
    the ingest writer starts and stops with the app's lifespan."""
    settings = settings or Settings()
    own_store = store is None
    store = store or Store.from_url(settings.resolved_database_url)
    ingester = ingester or Ingester(
        store.ingest, max_items=settings.ingest_queue_max_items, write_batch=settings.ingest_write_batch
    )
    state = AppState(settings=settings, store=store, ingester=ingester, auth=Authenticator(store))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ingester.start()
        # Load the tokenizer off the request path (~130 ms, only needed when usage is missing).
        threading.Thread(target=tokenizer_name, name="podium-warmup", daemon=True).start()
        try:
            yield
        finally:
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
    app.include_router(ingest.router, tags=["ingestion"])
    app.include_router(traces.router)
    app.include_router(scores.router)
    app.include_router(admin.router)
    return app

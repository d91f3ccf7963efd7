"""The web UI: server-rendered pages (Jinja2) with HTMX and uPlot, served by the API's app.

``install_ui(app)`` adds the pages under ``/`` (``/``, ``/traces``, ``/sessions``, ``/users``,
``/prompts``, ``/datasets``, ``/experiments``, ``/guardrails``, ``/settings``, ``/login``), the
static files under ``/ui/static`` and HTML error pages for UI requests; API paths (``/api/...``, ``/v1/...``, ``/metrics``, ``/health``) keep their JSON
errors. The third-party files (HTMX, uPlot) come from the npm registry through
``scripts/ui-assets.sh`` into ``static/vendor/`` (not committed); without them pages still
render and forms still work, without charts and partial updates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from podium.errors import PodiumError
from podium.server.ui.access import NeedLogin, UiError
from podium.server.ui.alerts import router as alerts_router
from podium.server.ui.annotations import router as annotations_router
from podium.server.ui.dashboards import router as dashboards_router
from podium.server.ui.deployments import router as deployments_router
from podium.server.ui.drift import router as drift_router
from podium.server.ui.eval_sweeps import router as eval_sweeps_router
from podium.server.ui.evals import router as evals_router
from podium.server.ui.gateway import router as gateway_router
from podium.server.ui.guardrails import router as guardrails_router
from podium.server.ui.online_evals import router as online_evals_router
from podium.server.ui.pages import page, router
from podium.server.ui.prompts import router as prompts_router
from podium.server.ui.redaction import router as redaction_router
from podium.server.ui.registry import router as registry_router
from podium.server.ui.training import router as training_router

__all__ = ["STATIC", "VENDOR_FILES", "install_ui"]

logger = logging.getLogger("podium.server.ui")
_Handler = Callable[[Request, Exception], Awaitable[Response]]

STATIC = Path(__file__).parent / "static"
VENDOR_FILES = ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css")

#: Paths that belong to the API, OTLP, the gateway and monitoring: JSON errors, never UI pages.
API_PREFIXES = ("/api/", "/v1/", "/metrics", "/health")


def _is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES) or path in ("/api", "/v1")


def _wants_html(request: Request) -> bool:
    if getattr(request.state, "ui", False):
        return True
    return not _is_api(request.url.path) and "text/html" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    if request.headers.get("hx-request") == "true":
        # HTMX swaps only 2xx by default: show the message in the page's alert region instead.
        return HTMLResponse(
            f'<div class="alert error" role="alert">{_esc(title)}: {_esc(message)}</div>',
            status_code=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    try:
        return page(request, "error.html", status=status, title=title, message=message)
    except Exception:  # the error page itself must not fail
        logger.exception("rendering the error page failed")
        return HTMLResponse(f"<h1>{_esc(title)}</h1><p>{_esc(message)}</p>", status_code=status)


def _esc(s: str) -> str:
    from markupsafe import escape

    return str(escape(s))


def install_ui(app: FastAPI) -> None:
    """Add the UI's routes, static files and HTML error pages to ``app`` (call after the API's
    error handlers are installed: the UI's handlers delegate API requests to them)."""
    missing = [f for f in VENDOR_FILES if not (STATIC / "vendor" / f).is_file()]
    app.state.ui_assets_missing = bool(missing)
    if missing:
        logger.warning("web UI: %s missing; run `bash scripts/ui-assets.sh` (charts and live filters need them)",
                       ", ".join(missing))
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(router)
    app.include_router(prompts_router)
    app.include_router(gateway_router)
    app.include_router(evals_router)
    app.include_router(guardrails_router)
    app.include_router(alerts_router)
    app.include_router(drift_router)
    app.include_router(online_evals_router)  # /evaluators: online evaluation rules
    app.include_router(annotations_router)
    app.include_router(registry_router)  # /registry: registered models, versions, aliases, lineage
    app.include_router(deployments_router)  # /deployments: canary deployments, gate checks, audit trail
    app.include_router(training_router)  # /training: fine-tuning runs, loss curves, compare, sweeps
    app.include_router(eval_sweeps_router)  # /eval-sweeps: the cost/quality front, decide, forecasts
    app.include_router(dashboards_router)  # /dashboards: saved and default dashboards, the chart editor
    app.include_router(redaction_router)  # /settings/redaction: redaction before storage

    # The handlers installed before these (podium.server.app's) are all async.
    prev_podium = cast("_Handler | None", app.exception_handlers.get(PodiumError))
    prev_http = cast("_Handler | None", app.exception_handlers.get(StarletteHTTPException))
    prev_any = cast("_Handler | None", app.exception_handlers.get(Exception))

    async def need_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NeedLogin)
        target = "/login?next=" + quote(exc.next_url, safe="")
        if exc.message:
            target += "&message=" + quote(exc.message, safe="")
        if request.headers.get("hx-request") == "true":
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def ui_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UiError)
        return _error_page(request, exc.status, exc.title, exc.message)

    async def podium_error(request: Request, exc: Exception) -> Any:
        if getattr(request.state, "ui", False) and isinstance(exc, PodiumError):
            title = {401: "Log in needed", 403: "Not allowed", 404: "Not found"}.get(exc.status_code, "Error")
            return _error_page(request, exc.status_code, title, exc.message)
        assert prev_podium is not None
        return await prev_podium(request, exc)

    async def http_error(request: Request, exc: Exception) -> Any:
        if isinstance(exc, StarletteHTTPException) and _wants_html(request):
            if exc.status_code == 404:
                return _error_page(request, 404, "Page not found",
                                   f"there is no page at {request.url.path}; try the traces list")
            if exc.status_code == 405:
                return _error_page(request, 405, "Method not allowed",
                                   f"{request.method} is not allowed on {request.url.path}")
        assert prev_http is not None
        return await prev_http(request, exc)

    async def unexpected(request: Request, exc: Exception) -> Any:
        if getattr(request.state, "ui", False):
            logger.exception("unexpected error rendering %s", request.url.path, exc_info=exc)
            return _error_page(request, 500, "Something went wrong",
                               f"unexpected server error ({type(exc).__name__}); see the server log")
        if prev_any is not None:
            return await prev_any(request, exc)
        raise exc

    app.add_exception_handler(NeedLogin, need_login)
    app.add_exception_handler(UiError, ui_error)
    if prev_podium is not None:
        app.add_exception_handler(PodiumError, podium_error)
    if prev_http is not None:
        app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)

"""One place that turns every error into the pinned JSON shape.

``{"error": {"code": str, "message": str, "details": list}}`` on every 4xx/5xx.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from podium.errors import PodiumError

__all__ = ["error_response", "install_error_handlers", "pydantic_details"]

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, details: list[Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or []}},
        status_code=status,
        headers=headers,
    )


def pydantic_details(errors: list[Any], prefix: str = "") -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        out.append({"field": (prefix + loc) if loc else prefix.rstrip(".") or None, "message": e.get("msg", "")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PodiumError)
    async def _podium(_req: Request, exc: PodiumError) -> JSONResponse:
        headers = None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers = {"Retry-After": str(max(1, round(retry_after)))}
        if exc.status_code >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        details = pydantic_details(list(exc.errors()))
        first: dict[str, Any] = details[0] if details else {"field": None, "message": "invalid request"}
        msg = f"invalid request: {first['field']}: {first['message']}" if first["field"] else first["message"]
        return error_response(400, "validation_error", msg, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        msg = str(exc.detail)
        if exc.status_code == 404:
            msg = f"no route {req.method} {req.url.path}; the API lives under /api/v1 (see /api/v1/docs)"
        elif exc.status_code == 405:
            msg = f"method {req.method} is not allowed on {req.url.path}; see /api/v1/docs"
        return error_response(exc.status_code, code, msg, [], dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error")
        return error_response(
            500, "internal_error", f"unexpected server error ({type(exc).__name__}); see the server log", []
        )

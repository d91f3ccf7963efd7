"""The server's pinned error shape back into the :mod:`podium.errors` classes (SDK side)."""

from __future__ import annotations

import httpx

from podium.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PodiumError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)

__all__ = ["error_from_response"]

_ERRORS: dict[int, type[PodiumError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
}


def error_from_response(r: httpx.Response) -> PodiumError:
    """``{"error": {"code", "message", "details"}}`` as the matching exception (5xx/429: unavailable)."""
    code = None
    try:
        err = r.json()["error"]
        message, details, code = str(err["message"]), list(err.get("details") or []), err.get("code")
    except Exception:
        message, details = f"HTTP {r.status_code}: {r.text[:200]}", []
    cls = _ERRORS.get(r.status_code)
    if cls is None:
        cls = ServiceUnavailable if r.status_code >= 500 or r.status_code == 429 else BadRequest
    if cls is BadRequest and code == "validation_error":
        cls = ValidationFailed
    e = cls(message, details=details)
    if code:
        e.code = code
    return e

"""The whole Podium exception tree.

Every error the server can return, and every error the SDK raises at configuration
time, is a :class:`PodiumError`. Each class carries the HTTP status and the stable
error ``code`` that the server puts in its pinned JSON error shape::

    {"error": {"code": "...", "message": "...", "details": [...]}}

Tree::

    PodiumError                      500 internal_error
    ├── ConfigurationError           500 configuration_error  (raised at start-up / Client() time)
    ├── BadRequest                   400 bad_request
    │   ├── ValidationFailed         400 validation_error     (details: one entry per bad field/item)
    │   └── ContentBlocked           400 content_blocked      (a guardrail blocked a prompt or an answer)
    ├── Unauthorized                 401 unauthorized
    ├── Forbidden                    403 forbidden
    ├── NotFound                     404 not_found
    ├── Conflict                     409 conflict
    ├── PayloadTooLarge              413 payload_too_large
    ├── UnsupportedMediaType         415 unsupported_media_type
    ├── TooManyRequests              429 rate_limited         (retry_after seconds)
    ├── ServiceUnavailable           503 unavailable
    ├── ClientClosed                 499 client_closed        (the caller went away mid-request; logged only)
    └── UpstreamError                502 upstream_error       (a model provider failed; status, retryable)
        └── UpstreamTimeout          504 upstream_timeout

The gateway renders these in OpenAI's shape instead: ``{"error": {"message", "type", "code", "param"}}``.

Messages say how to fix the problem, not only what went wrong.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "ClientClosed",
    "ConfigurationError",
    "Conflict",
    "ContentBlocked",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PodiumError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "ValidationFailed",
]


class PodiumError(Exception):
    """Root of every Podium error."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[Any] = details or []

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ConfigurationError(PodiumError):
    code = "configuration_error"


class BadRequest(PodiumError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    code = "validation_error"


class ContentBlocked(BadRequest):
    """A guardrail policy blocked the prompt (before the model was called) or the model's
    answer; the message names the rule, its scanner and why (docs/guardrails.md)."""

    code = "content_blocked"


class Unauthorized(PodiumError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PodiumError):
    status_code = 403
    code = "forbidden"


class NotFound(PodiumError):
    status_code = 404
    code = "not_found"


class Conflict(PodiumError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(PodiumError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(PodiumError):
    status_code = 415
    code = "unsupported_media_type"


class TooManyRequests(PodiumError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0, details: list[Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class ServiceUnavailable(PodiumError):
    status_code = 503
    code = "unavailable"


class UpstreamError(PodiumError):
    """A model provider answered with an error, or could not be reached.

    ``upstream_status`` is the provider's HTTP status (None when there was no answer);
    ``retryable`` says whether the router may retry or fall back (429, 5xx, network errors,
    timeouts) or must give the error to the caller as is (other 4xx: the request is wrong).
    """

    status_code = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
        error_type: str | None = None,
        param: str | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.upstream_status = upstream_status
        self.retryable = retryable
        self.upstream_retry_after = retry_after
        self.error_type = error_type
        self.param = param


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class ClientClosed(PodiumError):
    status_code = 499
    code = "client_closed"

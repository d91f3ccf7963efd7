"""End-user feedback: ``POST /api/v1/feedback`` with the project's public key alone.

Browsers and mobile apps cannot keep a secret, so this one route accepts the public key
(``x-podium-public-key: pk-...`` or ``Authorization: Bearer pk-...``; a full key works too) and
grants it exactly one thing: writing a score with source ``feedback`` through the same ingest
path as every other score. It reads nothing back (``202 {"id": ...}``), caps the body at
:data:`MAX_BODY_BYTES`, rate-limits per public key and client IP (:class:`FeedbackLimiter`,
per process) and answers CORS only for ``PODIUM_FEEDBACK_CORS_ORIGINS``. See docs/feedback.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from podium.core.records import ID_PATTERN, ScoreIn
from podium.core.roles import Action, allowed, key_roles_for
from podium.errors import BadRequest, Forbidden, PodiumError, TooManyRequests, Unauthorized, ValidationFailed
from podium.server.body import read_json
from podium.server.convert import BatchBuilder
from podium.server.errors import error_response, pydantic_details
from podium.server.routes.score_configs import score_configs_for
from podium.server.state import AppState
from podium.store.repos.projects import ApiKey

__all__ = ["MAX_BODY_BYTES", "FeedbackIn", "FeedbackLimiter", "router"]

#: Largest feedback body (bytes); a thumbs up with a comment is well under 1 KB.
MAX_BODY_BYTES = 16 * 1024

_ALLOW_HEADERS = "content-type, x-podium-public-key, authorization"
_Id = Annotated[str, Field(pattern=ID_PATTERN.pattern)]


class FeedbackIn(BaseModel):
    """One piece of feedback on a trace (optionally a span of it)."""

    model_config = ConfigDict(extra="forbid")

    trace_id: _Id
    value: Annotated[float, Field(allow_inf_nan=False, gt=-1e300, lt=1e300)] | bool | Literal["up", "down"]
    name: Annotated[str, Field(min_length=1, max_length=256)] = "user-feedback"
    comment: Annotated[str, Field(max_length=4000)] | None = None
    span_id: _Id | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None
    user_id: Annotated[str, Field(max_length=256)] | None = None
    metadata: dict[str, Any] | None = None

    def to_score(self) -> ScoreIn:
        """The score this feedback becomes: "up"/"down" are the booleans true/false (stored 1/0)."""
        value = {"up": True, "down": False}.get(self.value, self.value) if isinstance(self.value, str) else self.value
        metadata = dict(self.metadata or {})
        if self.user_id is not None:
            metadata["user_id"] = self.user_id
        return ScoreIn(name=self.name, value=value, trace_id=self.trace_id, span_id=self.span_id,
                       session_id=self.session_id, source="feedback", comment=self.comment,
                       metadata=metadata or None)


class FeedbackLimiter:
    """Token buckets keyed by (public key, client IP): ``rate`` requests a minute, bursts up to
    ``rate``. In memory, per server process (several workers each allow ``rate``); the least
    recently used buckets are forgotten past ``max_entries``."""

    def __init__(self, rate: int, max_entries: int = 100_000) -> None:
        self.rate = rate
        self._per_s = rate / 60.0
        self._max = max_entries
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str], now: float | None = None) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until the next token."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.rate), now))
            tokens = min(float(self.rate), tokens + (now - last) * self._per_s)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._per_s
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            return wait


def _cors_headers(request: Request) -> dict[str, str]:
    """The CORS headers for this request's Origin: none unless PODIUM_FEEDBACK_CORS_ORIGINS allows it."""
    origin = request.headers.get("origin")
    st: AppState = request.app.state.podium
    allowed_origins = st.settings.feedback_origins
    if not origin or not allowed_origins:
        return {}
    if "*" in allowed_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin.rstrip("/") in allowed_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}  # the answer depends on the Origin: caches must not share it


class FeedbackRoute(APIRoute):
    """Errors of this route (auth, rate limit, validation) are answered here, in the pinned shape,
    with the CORS headers, so browser code can read why it was refused."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                resp = await inner(request)
            except PodiumError as exc:
                retry_after = getattr(exc, "retry_after", None)
                headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
                resp = error_response(exc.status_code, exc.code, exc.message, exc.details, headers)
            resp.headers.update(_cors_headers(request))
            return resp

        return handler


router = APIRouter(prefix="/api/v1", tags=["feedback"], route_class=FeedbackRoute)


def _public_key_of(request: Request) -> str | None:
    pk = request.headers.get("x-podium-public-key")
    if pk is not None:
        return pk.strip()
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith("pk-"):
        return value.strip()
    return None


async def _feedback_key(request: Request) -> ApiKey:
    """The key sending feedback: its public key alone, or a full key (Basic / Bearer sk-...)."""
    st: AppState = request.app.state.podium
    public = _public_key_of(request)
    if public is not None:
        key = await st.auth.authenticate_public(public)
    elif request.headers.get("authorization"):
        key = await st.auth.authenticate_async(request.headers.get("authorization"))
    else:
        raise Unauthorized("missing public key: send the header `x-podium-public-key: pk-...` (or "
                           "`Authorization: Bearer pk-...`); `podium keys list` shows the project's keys")
    if not allowed(key.role, Action.FEEDBACK):
        raise Forbidden(f"a key with role {key.role!r} cannot send feedback; use the public key of a key with "
                        f"role {' or '.join(key_roles_for(Action.FEEDBACK))}")
    return key


_feedback_key.podium_action = Action.FEEDBACK  # type: ignore[attr-defined]  # read by tests/server/test_role_matrix.py

_BODY_SCHEMA = FeedbackIn.model_json_schema()


@router.post(
    "/feedback",
    status_code=202,
    summary="Send end-user feedback (public key alone; write-only)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
)
async def send_feedback(request: Request, key: Annotated[ApiKey, Depends(_feedback_key)]) -> JSONResponse:
    st: AppState = request.app.state.podium
    limiter: FeedbackLimiter | None = getattr(request.app.state, "feedback_limiter", None)
    if limiter is None or limiter.rate != st.settings.feedback_rate:
        limiter = request.app.state.feedback_limiter = FeedbackLimiter(st.settings.feedback_rate)
    client = request.client.host if request.client else ""
    wait = limiter.take((key.public_key, client))
    if wait > 0:
        raise TooManyRequests(
            f"too much feedback from this client: at most {limiter.rate} a minute per public key and IP "
            "(PODIUM_FEEDBACK_RATE); retry after the Retry-After seconds", retry_after=wait)
    doc = await read_json(request, MAX_BODY_BYTES)
    if not isinstance(doc, dict):
        raise BadRequest('the body must be a JSON object such as {"trace_id": "...", "value": "up"}')
    try:
        score = FeedbackIn.model_validate(doc).to_score()
    except ValidationError as exc:
        details = pydantic_details(list(exc.errors(include_url=False)))
        first = details[0] if details else {"field": None, "message": "invalid feedback"}
        where = f"{first['field']}: " if first["field"] else ""
        raise ValidationFailed(f"invalid feedback: {where}{first['message']}; send "
                               '{"trace_id": "<trace id>", "value": "up"|"down"|true|false|<number>}',
                               details=details) from None
    configs = await score_configs_for(request, key.project_id)
    builder = BatchBuilder(key.project_id, lambda: st.prices_for(key.project_id), configs)
    sid = builder.add_score(score)  # feedback that breaks a score config of its name: 400
    refused = await st.ingester.submit(builder.batch)
    if refused:
        raise BadRequest(refused[0][1])
    return JSONResponse({"id": sid}, status_code=202)


@router.options("/feedback", include_in_schema=False)
async def feedback_preflight(request: Request) -> Response:
    """CORS preflight: the allow headers for configured origins, nothing for the others."""
    headers = _cors_headers(request)
    if "Access-Control-Allow-Origin" in headers:
        headers.update({"Access-Control-Allow-Methods": "POST, OPTIONS",
                        "Access-Control-Allow-Headers": _ALLOW_HEADERS, "Access-Control-Max-Age": "600"})
    return Response(status_code=204, headers=headers)

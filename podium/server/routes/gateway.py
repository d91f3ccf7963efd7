"""The OpenAI-compatible endpoints: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``, ``/v1/models``.

These are plain ASGI endpoints rather than FastAPI routes: the gateway passes bodies
through, answers in OpenAI's error format, streams SSE, and must add as little as
possible per request. While a request waits for the upstream, the endpoint also waits
for the client to go away; if it does, the upstream call is cancelled (its connection
closed, the local model stops generating) and the limits are released.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from podium.errors import BadRequest, PayloadTooLarge, PodiumError, TooManyRequests
from podium.gateway import wire
from podium.gateway.service import Call, Gateway

__all__ = ["ChatEndpoints", "ModelsEndpoint"]

logger = logging.getLogger("podium.gateway")

Scope = dict[str, Any]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]


def _state(scope: Scope) -> Any:
    return scope["app"].state.podium


async def _send_json(send: Any, status: int, obj: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or ())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Any, exc: PodiumError) -> None:
    extra: list[tuple[bytes, bytes]] = []
    retry = getattr(exc, "retry_after", None)
    if isinstance(exc, TooManyRequests) and retry is not None:
        extra.append((b"retry-after", str(max(1, round(retry))).encode()))
        if exc.details and isinstance(exc.details[0], dict) and exc.details[0].get("retryable") is False:
            extra.append((b"x-should-retry", b"false"))  # a spent total budget: the OpenAI SDK stops retrying
    await _send_json(send, wire.http_status(exc), wire.error_body(exc), extra)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise asyncio.CancelledError
        part = msg.get("body", b"")
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(
                f"request body is over {limit} bytes (PODIUM_MAX_REQUEST_BYTES); send a smaller request"
            )
        chunks.append(part)
        if not msg.get("more_body"):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def _until_disconnect(receive: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return


def _auth(scope: Scope, headers: dict[str, str]) -> Any:
    st = _state(scope)
    auth = headers.get("authorization")
    if auth is None and headers.get("api-key"):  # Azure-style clients
        auth = "Bearer " + headers["api-key"]
    return st.auth.authenticate(auth)


class ChatEndpoints:
    """``POST /v1/chat/completions`` | ``/v1/completions`` | ``/v1/embeddings``."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        st = _state(scope)
        gw: Gateway | None = st.gateway
        if scope["method"] != "POST":
            await _send_json(send, 405, {"error": {"message": f"use POST on {scope['path']}",
                                                   "type": "invalid_request_error", "param": None,
                                                   "code": "method_not_allowed"}})
            return
        try:
            if gw is None:
                raise BadRequest("the gateway is not enabled in this process")
            headers = _headers(scope)
            key = _auth(scope, headers)
            raw = await _read_body(receive, st.settings.max_request_bytes)
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise BadRequest(f"the body is not valid JSON ({e}); send a JSON object like "
                                 '{"model": "local", "messages": [...]}')
            call = gw.prepare(key, self.endpoint, body, headers)
        except asyncio.CancelledError:
            return
        except PodiumError as e:
            await _send_error(send, e)
            return
        if body.get("stream"):
            await self._stream(gw, call, receive, send)
        else:
            await self._once(gw, call, receive, send)

    async def _once(self, gw: Gateway, call: Call, receive: Any, send: Any) -> None:
        task = asyncio.ensure_future(gw.call(call))
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the server is shutting down
            task.cancel()
            watcher.cancel()
            raise
        watcher.cancel()
        if not task.done():  # the client went away: stop the upstream call
            task.cancel()
            try:
                await task
            except BaseException:
                pass
            return
        try:
            out = task.result()
        except PodiumError as e:
            await _send_error(send, e)
            return
        extra = _podium_headers(call)
        await _send_json(send, 200, out, extra)

    async def _stream(self, gw: Gateway, call: Call, receive: Any, send: Any) -> None:
        async def run() -> None:
            try:
                it = await gw.stream(call)
            except PodiumError as e:
                await _send_error(send, e)
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_SSE_HEADERS, *_podium_headers(call)]})
            try:
                async for chunk in it:
                    await send({"type": "http.response.body", "more_body": True,
                                "body": b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"})
            except PodiumError as e:
                # After the first byte there is no status code left to change: say so in the stream.
                err = json.dumps(wire.error_body(e), separators=(",", ":")).encode()
                await send({"type": "http.response.body", "body": b"data: " + err + b"\n\n", "more_body": False})
                return
            finally:
                await it.aclose()  # type: ignore[attr-defined]
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})

        task = asyncio.ensure_future(run())
        watcher = asyncio.ensure_future(_until_disconnect(receive))
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
        watcher.cancel()
        try:
            await task
        except (asyncio.CancelledError, OSError):
            pass
        except Exception:
            logger.exception("stream failed")


def _podium_headers(call: Call) -> list[tuple[bytes, bytes]]:
    dep = call.routed.deployment
    return [
        (b"x-podium-trace-id", call.trace_id.encode()),
        (b"x-podium-cache", b"hit" if call.cache_hit else b"miss"),
        (b"x-podium-deployment", (dep.id if dep else "cache").encode("utf-8", "replace")),
    ]


class ModelsEndpoint:
    """``GET /v1/models`` (and ``/v1/models/{id}``): the aliases this key may call."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        st = _state(scope)
        gw: Gateway | None = st.gateway
        try:
            if gw is None:
                raise BadRequest("the gateway is not enabled in this process")
            key = _auth(scope, _headers(scope))
            aliases = gw.visible_aliases(key)
        except PodiumError as e:
            await _send_error(send, e)
            return
        data = [
            {"id": a.name, "object": "model", "created": 0, "owned_by": _owner(a), "mode": a.mode,
             "description": a.description}
            for a in aliases
        ]
        name = scope.get("path_params", {}).get("model")
        if name:
            for d in data:
                if d["id"] == name:
                    await _send_json(send, 200, d)
                    return
            from podium.errors import NotFound

            await _send_error(send, NotFound(
                f"model {name!r} does not exist; available: {', '.join(d['id'] for d in data)}",
                details=[{"field": "model", "message": "unknown model"}]))
            return
        await _send_json(send, 200, {"object": "list", "data": data})


def _owner(alias: Any) -> str:
    providers = sorted({d.provider for d in alias.deployments})
    return "podium-" + "+".join(providers)

"""The OpenAI-compatible endpoints: ``/v1/chat/completions``, ``/v1/completions``,
``/v1/responses``, ``/v1/embeddings``, ``/v1/models``; any other ``/v1/...`` path (or a
wrong method) answers 404/405 in OpenAI's error shape, listing what is served.

These are plain ASGI endpoints rather than FastAPI routes: the gateway passes bodies
through, answers in OpenAI's error format, streams SSE, and must add as little as
possible per request. While a request waits for the upstream, the endpoint also waits
for the client to go away (a non-streaming call from ``WATCH_AFTER`` = 50 ms on); if it
does, the upstream call is cancelled (its connection closed, the local model stops
generating) and the limits are released. An unexpected
exception answers 500 in OpenAI's shape (or, mid-stream, an error event), never Podium's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from podium.errors import BadRequest, NotFound, PayloadTooLarge, PodiumError, TooManyRequests
from podium.gateway import responses, wire
from podium.gateway.service import GATEWAY_ACTION, Call, Gateway

__all__ = ["SERVED", "ChatEndpoints", "FastPath", "ModelsEndpoint", "OpenAIFallback", "Outermost", "ResponsesEndpoint",
           "install", "install_fallback", "install_fast_path", "outermost"]

logger = logging.getLogger("podium.gateway")

Scope = dict[str, Any]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]


def _state(scope: Scope) -> Any:
    return scope["app"].state.podium


#: One compact encoder for every answer (``json.dumps(obj, separators=...)`` builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":")).encode
#: A non-streaming call watches for the client going away only once it has run this long: most answers
#: come sooner, and a timer is ~10x cheaper than a watcher task per request.
WATCH_AFTER = 0.05


async def _send_json(send: Any, status: int, obj: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = _encode(obj).encode()
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


async def _auth(scope: Scope, headers: dict[str, str]) -> Any:
    """The caller's key, and its project's aliases, limits and prices warm in the caches:
    a miss loads in a worker thread, so no SQL runs on the event loop."""
    st = _state(scope)
    auth = headers.get("authorization")
    if auth is None and headers.get("api-key"):  # Azure-style clients
        auth = "Bearer " + headers["api-key"]
    key = await st.auth.authenticate_async(auth)
    if st.gateway is not None:
        await st.gateway.warm(key.project_id)
    return key


class _Watch:
    """Cancels ``task`` (the request's) when the client disconnects, from when :meth:`start` runs
    until :meth:`stop`."""

    __slots__ = ("done", "gone", "receive", "task", "watcher")

    def __init__(self, task: asyncio.Task[Any] | None, receive: Any) -> None:
        self.task = task
        self.receive = receive
        self.done = False
        self.gone = False
        self.watcher: asyncio.Future[None] | None = None

    def start(self) -> None:
        if not self.done and self.task is not None:
            self.watcher = asyncio.ensure_future(_until_disconnect(self.receive))
            self.watcher.add_done_callback(self._client_gone)

    def _client_gone(self, w: asyncio.Future[None]) -> None:
        if not self.done and not w.cancelled() and w.exception() is None and self.task is not None:
            self.gone = True
            self.task.cancel()  # stop the upstream call

    def stop(self) -> None:
        self.done = True
        w, self.watcher = self.watcher, None
        if w is not None:
            w.remove_done_callback(self._client_gone)
            w.cancel()


class _Started:
    """Wraps ``send`` to remember whether the response has started (a 500 can still be sent)."""

    __slots__ = ("send", "started")

    def __init__(self, send: Any) -> None:
        self.send = send
        self.started = False

    async def __call__(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            self.started = True
        await self.send(msg)


_INTERNAL = {"error": {"message": "unexpected gateway error; the server log has the details (search for "
                                  "'gateway request failed')", "type": "server_error", "param": None,
                       "code": "internal_error"}}


def _sse(obj: Any, event: str | None = None) -> bytes:
    data = b"data: " + _encode(obj).encode() + b"\n\n"
    return b"event: " + event.encode() + b"\n" + data if event else data


class _ChatShape:
    """Chat/completion chunks as the caller asked for them (usage only with include_usage)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.include_usage = wire.wants_usage(body)
        self.usage_sent = False
        self.template: dict[str, Any] | None = None

    def start(self) -> bytes:
        return b""

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if self.template is None:
            self.template = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
        out = wire.client_chunk(chunk, self.include_usage)
        if out is None:
            return b""
        if self.include_usage and out.get("usage") is not None:
            self.usage_sent = True
        return _sse(out)

    def end(self, call: Call) -> bytes:
        tail = b""
        if self.include_usage and not self.usage_sent and call.usage is not None:
            # The upstream sent no usage: the caller asked for it, so send Podium's count.
            tail = _sse({**(self.template or {}), "choices": [], "usage": call.usage})
        return tail + b"data: [DONE]\n\n"

    def error(self, err: dict[str, Any]) -> bytes:
        return _sse(err)


class _ResponsesShape:
    """Chat chunks as the Responses API's event stream."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.rs = responses.ResponseStream(body)
        self.usage: Any = None

    def _events(self, events: list[dict[str, Any]]) -> bytes:
        return b"".join(_sse(e, e["type"]) for e in events)

    def start(self) -> bytes:
        return self._events(self.rs.start())

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        return self._events(self.rs.feed(chunk))

    def end(self, call: Call) -> bytes:
        return self._events(self.rs.finish(self.usage or call.usage))

    def error(self, err: dict[str, Any]) -> bytes:
        return self._events(self.rs.fail(err["error"]))


class ChatEndpoints:
    """``POST /v1/chat/completions`` | ``/v1/completions`` | ``/v1/embeddings``."""

    podium_action = GATEWAY_ACTION  # the role check is Gateway.prepare's

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        guarded = _Started(send)
        try:
            await self._handle(scope, receive, guarded)
        except (asyncio.CancelledError, OSError):
            raise
        except Exception:
            logger.exception("gateway request failed: %s %s", scope.get("method"), scope.get("path"))
            if not guarded.started:
                await _send_json(send, 500, _INTERNAL)

    def translate(self, body: Any) -> dict[str, Any]:
        """The body the gateway's ``endpoint`` takes (the Responses endpoint translates)."""
        return body

    async def _handle(self, scope: Scope, receive: Any, send: Any) -> None:
        st = _state(scope)
        gw: Gateway | None = st.gateway
        try:
            if gw is None:
                raise BadRequest("the gateway is not enabled in this process")
            headers = _headers(scope)
            key = await _auth(scope, headers)
            gw.check_role(key)  # before the body: a key that may not call models learns that first
            raw = await _read_body(receive, st.settings.max_request_bytes)
            body = wire.parse_body(raw)
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object like {\"model\": \"local\", ...}",
                                 details=[{"field": None, "message": "not an object"}])
            request = body
            body = self.translate(body)
            call = gw.prepare(key, self.endpoint, body, headers)
            self.label(call)
        except asyncio.CancelledError:
            return
        except PodiumError as e:
            if gw is not None:
                gw.metrics.refused(e)  # 400/401/403/404/413 before a model is resolved: counted here
            await _send_error(send, e)
            return
        if body.get("stream"):
            await self._stream(gw, call, receive, send, self.shape(request))
        else:
            await self._once(gw, call, receive, send, request)

    def label(self, call: Call) -> None:
        """Hook: mark the call (the Responses endpoint names itself in the trace)."""

    def shape(self, request: dict[str, Any]) -> Any:
        return _ChatShape(request)

    def answer(self, request: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        return out

    async def _once(self, gw: Gateway, call: Call, receive: Any, send: Any, request: dict[str, Any]) -> None:
        # The call runs in this task; once it has run WATCH_AFTER seconds, a watcher task cancels it if
        # the client goes away first (most calls end sooner and never start one).
        w = _Watch(asyncio.current_task(), receive)
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER, w.start)
        try:
            out = await gw.call(call)
        except asyncio.CancelledError:
            if w.gone and w.task is not None and w.task.uncancel() == 0:
                return  # the client went away: nothing to answer
            raise  # the server is shutting down
        except PodiumError as e:
            w.stop()
            await _send_error(send, e)
            return
        finally:
            timer.cancel()
            w.stop()
        extra = _podium_headers(call)
        await _send_json(send, 200, self.answer(request, out), extra)

    async def _stream(self, gw: Gateway, call: Call, receive: Any, send: Any, shape: Any) -> None:
        async def run() -> None:
            try:
                it = await gw.stream(call)
            except PodiumError as e:
                await _send_error(send, e)
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [*_SSE_HEADERS, *_podium_headers(call)]})
            try:
                head = shape.start()
                if head:
                    await send({"type": "http.response.body", "more_body": True, "body": head})
                async for chunk in it:
                    data = shape.chunk(chunk)
                    if data:
                        await send({"type": "http.response.body", "more_body": True, "body": data})
            except OSError:
                raise  # the client went away
            except Exception as e:
                # After the first byte there is no status code left to change: say so in the stream.
                if isinstance(e, PodiumError):
                    err = wire.error_body(e)
                else:
                    logger.exception("gateway stream failed")
                    err = _INTERNAL
                await send({"type": "http.response.body", "body": shape.error(err), "more_body": False})
                return
            finally:
                await it.aclose()  # type: ignore[attr-defined]  # an async generator, typed as an iterator
            await send({"type": "http.response.body", "body": shape.end(call), "more_body": False})

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
            logger.exception("gateway request failed: stream")
            if not getattr(send, "started", True):
                await _send_json(send, 500, _INTERNAL)


class ResponsesEndpoint(ChatEndpoints):
    """``POST /v1/responses``: OpenAI's Responses API, served through the chat path."""

    def __init__(self) -> None:
        super().__init__("chat")

    def translate(self, body: Any) -> dict[str, Any]:
        return responses.to_chat(body)

    def label(self, call: Call) -> None:
        call.api = "responses"

    def shape(self, request: dict[str, Any]) -> Any:
        return _ResponsesShape(request)

    def answer(self, request: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        return responses.to_response(request, out)


def _podium_headers(call: Call) -> list[tuple[bytes, bytes]]:
    dep = call.routed.deployment
    return [
        (b"x-podium-trace-id", call.trace_id.encode()),
        (b"x-podium-cache", b"hit" if call.cache_hit else b"miss"),
        (b"x-podium-deployment", (dep.id if dep else "cache").encode("utf-8", "replace")),
    ]


class ModelsEndpoint:
    """``GET /v1/models`` (and ``/v1/models/{id}``): the aliases this key may call."""

    podium_action = None  # any valid key may list the aliases it is allowed

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        guarded = _Started(send)
        try:
            await self._handle(scope, guarded)
        except (asyncio.CancelledError, OSError):
            raise
        except Exception:
            logger.exception("gateway request failed: %s %s", scope.get("method"), scope.get("path"))
            if not guarded.started:
                await _send_json(send, 500, _INTERNAL)

    async def _handle(self, scope: Scope, send: Any) -> None:
        st = _state(scope)
        gw: Gateway | None = st.gateway
        try:
            if gw is None:
                raise BadRequest("the gateway is not enabled in this process")
            key = await _auth(scope, _headers(scope))
            aliases = gw.visible_aliases(key)
        except PodiumError as e:
            if gw is not None:
                gw.metrics.refused(e)
            await _send_error(send, e)
            return
        data: list[dict[str, Any]] = [
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
            await _send_error(send, NotFound(
                f"model {name!r} does not exist; available: {', '.join(d['id'] for d in data)}",
                details=[{"field": "model", "message": "unknown model"}]))
            return
        await _send_json(send, 200, {"object": "list", "data": data})


def _owner(alias: Any) -> str:
    providers = sorted({d.provider for d in alias.deployments})
    return "podium-" + "+".join(providers)


#: What the gateway serves, for the 404/405 answers: (method, path).
SERVED = (
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
)


class OpenAIFallback:
    """Any other ``/v1/...`` request: 404 (unknown path) or 405 (wrong method) in OpenAI's
    error shape, listing the endpoints served. Registered last, so real routes win."""

    def __init__(self, *, otlp: bool) -> None:
        self.served = [*SERVED, ("POST", "/v1/traces"), ("POST", "/v1/logs")] if otlp else list(SERVED)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        method, path = scope["method"], scope["path"]
        listing = ", ".join(f"{m} {p}" for m, p in self.served)
        allowed = sorted({m for m, p in self.served if _same_path(p, path)})
        if allowed:
            msg = (f"{method} is not allowed on {path}; use {' or '.join(allowed)}. This gateway serves: "
                   f"{listing}")
            await _send_json(send, 405, {"error": {"message": msg, "type": "invalid_request_error", "param": None,
                                                   "code": "method_not_allowed"}},
                             [(b"allow", ", ".join(allowed).encode())])
            return
        msg = (f"unknown endpoint {method} {path}. This gateway serves: {listing} "
               "(Podium's own REST API is under /api/v1)")
        await _send_json(send, 404, {"error": {"message": msg, "type": "invalid_request_error", "param": None,
                                               "code": "unknown_url"}})


def _same_path(pattern: str, path: str) -> bool:
    if pattern.endswith("{model}"):
        prefix = pattern[: -len("{model}")]
        return path.startswith(prefix) and len(path) > len(prefix)
    return path == pattern


def install(app: Any) -> None:
    """Register the OpenAI-compatible endpoints on ``app`` (a Starlette/FastAPI app)."""
    r = app.router
    r.add_route("/v1/chat/completions", ChatEndpoints("chat"), methods=["POST"], include_in_schema=False)
    r.add_route("/v1/completions", ChatEndpoints("completion"), methods=["POST"], include_in_schema=False)
    r.add_route("/v1/responses", ResponsesEndpoint(), methods=["POST"], include_in_schema=False)
    r.add_route("/v1/embeddings", ChatEndpoints("embeddings"), methods=["POST"], include_in_schema=False)
    r.add_route("/v1/models", ModelsEndpoint(), methods=["GET"], include_in_schema=False)
    r.add_route("/v1/models/{model:path}", ModelsEndpoint(), methods=["GET"], include_in_schema=False)


class FastPath:
    """The outermost ASGI layer: the gateway's hot endpoints (exact path and method) go straight
    to their endpoint, wrapped only in :class:`SecurityHeadersMiddleware` (the same headers and
    Host allow-list as every other answer); everything else goes to the app's middleware stack.

    What the skipped layers did on these paths is done by the endpoints themselves or does not
    apply to them: errors (the endpoints answer every exception in OpenAI's shape), the NUL check
    (``/v1/`` keeps its own format), the audit log (skips ``/v1/``), CSRF (form posts only),
    routing (an exact match here; other methods and ``/v1/models/{id}`` take the normal route,
    whose 405/404 answers are unchanged). Measured: ~30-40 µs of CPU per request less than the
    Starlette/FastAPI stack (nine middleware and routing layers, FastAPI's route telemetry)."""

    __slots__ = ("app", "inner", "routes")

    def __init__(self, app: Any, inner: Any, routes: dict[str, tuple[str, Any]]) -> None:
        self.app = app
        self.inner = inner
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hit = self.routes.get(scope["path"])
            if hit is not None and scope["method"] == hit[0]:
                await hit[1](scope, receive, send)
                return
        await self.inner(scope, receive, send)


def install_fast_path(app: Any, *, allowed_hosts: str = "", hsts_max_age: int = 31_536_000) -> None:
    """Serve the endpoints :func:`install` registered through :class:`FastPath` (call it once the
    app's middleware is added; the app's own routes stay registered and answer the same)."""
    from podium.server.security_headers import SecurityHeadersMiddleware

    routes: dict[str, tuple[str, Any]] = {}
    for route in app.router.routes:
        endpoint = getattr(route, "endpoint", None)
        methods = getattr(route, "methods", None) or ()
        path = getattr(route, "path", "")
        if isinstance(endpoint, ChatEndpoints | ModelsEndpoint) and "{" not in path:
            method = "POST" if "POST" in methods else "GET"
            routes[path] = (method, SecurityHeadersMiddleware(endpoint, allowed_hosts=allowed_hosts,
                                                              hsts_max_age=hsts_max_age))
    build = app.build_middleware_stack

    def build_with_fast_path() -> Any:
        return FastPath(app, build(), routes)

    app.build_middleware_stack = build_with_fast_path
    app.state.podium_fast_routes = routes  # for outermost()


class Outermost:
    """The ASGI callable a server process hands uvicorn (:func:`outermost`): the gateway's hot
    endpoints before FastAPI's own ``__call__``, whose per-request check for a configured
    OpenTelemetry provider (FastAPI's native telemetry: environment lookups on every request) cost
    ~6 µs of CPU per call here; everything else, lifespan included, goes to the app unchanged.
    What the endpoints get is what Starlette would have given them (``scope["app"]``)."""

    __slots__ = ("app", "routes")

    def __init__(self, app: Any, routes: dict[str, tuple[str, Any]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hit = self.routes.get(scope["path"])
            if hit is not None and scope["method"] == hit[0]:
                scope["app"] = self.app
                await hit[1](scope, receive, send)
                return
        await self.app(scope, receive, send)


def outermost(app: Any) -> Any:
    """``app`` as uvicorn should call it: :class:`Outermost` when :func:`install_fast_path` ran on it
    (and the app sets no ``root_path``), else ``app`` itself."""
    routes = getattr(app.state, "podium_fast_routes", None)
    if not routes or getattr(app, "root_path", None):
        return app
    return Outermost(app, routes)


def install_fallback(app: Any, *, otlp: bool) -> None:
    """Register :class:`OpenAIFallback` for every other ``/v1`` path; call it after all other routes."""
    fallback = OpenAIFallback(otlp=otlp)
    app.router.add_route("/v1", fallback, include_in_schema=False)
    app.router.add_route("/v1/{rest:path}", fallback, include_in_schema=False)

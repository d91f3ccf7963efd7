"""Shared plumbing for the providers that talk HTTP: transports, error mapping, SSE parsing.

One client per provider instance, shared by all its deployments: HTTP/1.1 keep-alive (no
HTTP/2), a pool of up to 1,024 connections with 512 kept alive. Two transports do the I/O:

* :class:`AiohttpTransport` when ``aiohttp`` is installed (``backend="auto"``, the default);
* :class:`HttpxTransport` otherwise, or when asked (``backend="httpx"``, or a ``client`` /
  ``transport`` is passed: ``httpx.MockTransport`` is the test seam).

Why two: measured against a local keep-alive server (client pinned to one core, uvloop), one
non-streaming chat request costs the client ~90 µs of CPU through aiohttp and ~1,200 µs
through httpx at 16 concurrent requests (~1,200–3,900 µs at 64, where httpcore's pool
degrades); a 7-chunk stream ~160 µs vs ~970 µs. The gateway's budget (≥1,000 req/s on two
cores including its own work) cannot be met with httpx alone.

Timeouts come from :attr:`Deployment.timeout` on each request: it bounds the connect (at
most 10 s) and every read, so for a stream it is the longest silence allowed between events.

Errors (see :mod:`podium.errors`):

* an HTTP error answer → :func:`error_from_response`: 408, 429 and 5xx are ``retryable``
  (with ``Retry-After`` / ``retry-after-ms`` / Google's ``RetryInfo`` parsed into
  ``retry_after``); other 4xx are not, and keep the upstream's ``message``, ``type`` and
  ``param`` (its ``code`` goes in ``details``) so the gateway can hand a 400 back as a 400;
* no answer (refused, reset, DNS) → ``UpstreamError("could not reach <base>: ...",
  upstream_status=None, retryable=True)``; a timeout → :class:`UpstreamTimeout`;
* a stream that breaks or ends before its end marker → ``UpstreamError("stream ended before
  completion ...")`` raised from the iterator, never a silent end.

The non-streaming path is the gateway's hot path: one ``json`` encode into bytes, one POST,
one ``json.loads``; no pydantic, no per-request client, timeout or encoder objects.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from podium.errors import UpstreamError, UpstreamTimeout
from podium.gateway.wire import ChatChunk, ChatCompletion, CompletionChoice, TextCompletion

from .base import Deployment

__all__ = [
    "AiohttpTransport",
    "HttpProvider",
    "HttpxTransport",
    "Response",
    "bad_request",
    "chat_as_completion",
    "chat_chunks_as_completion",
    "completion_as_chat",
    "dumps",
    "error_from_payload",
    "error_from_response",
    "iter_sse",
    "make_client",
    "make_transport",
    "parse_retry_after",
    "stream_ended",
    "timeout_for",
]

USER_AGENT = "podium-gateway"
MAX_CONNECTIONS = 1024
MAX_KEEPALIVE = 512
CONNECT_TIMEOUT = 10.0

_encoder = json.JSONEncoder(separators=(",", ":"))
_loads = json.loads


def dumps(obj: Any) -> bytes:
    """Compact JSON as bytes (ASCII-escaped, so lone surrogates from the caller cannot break it)."""
    return _encoder.encode(obj).encode()


def make_client(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = MAX_CONNECTIONS,
    max_keepalive: int = MAX_KEEPALIVE,
    trust_env: bool = True,
) -> httpx.AsyncClient:
    """The one client a provider keeps for its lifetime (HTTP/1.1, keep-alive pool, no redirects).

    ``trust_env`` honours ``HTTPS_PROXY``/``NO_PROXY`` and friends, as a self-hosted gateway
    behind a corporate proxy needs. ``transport`` is the test seam (``httpx.MockTransport``).
    """
    return httpx.AsyncClient(
        http1=True,
        http2=False,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive, keepalive_expiry=30.0
        ),
        timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT),
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
        transport=transport,
        trust_env=trust_env,
    )


_timeouts: dict[float, httpx.Timeout] = {}


def timeout_for(seconds: float) -> httpx.Timeout:
    """A cached :class:`httpx.Timeout` for a deployment's timeout (few distinct values exist)."""
    t = _timeouts.get(seconds)
    if t is None:
        t = _timeouts[seconds] = httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))
    return t


# --- errors ---------------------------------------------------------------------------------

# Google's canonical status names → OpenAI's error types, so callers see one vocabulary.
_GOOGLE_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "UNAVAILABLE": "server_error",
    "INTERNAL": "server_error",
    "DEADLINE_EXCEEDED": "timeout",
}


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date), or None."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _google_retry_delay(details: Any) -> float | None:
    if not isinstance(details, list):
        return None
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
            delay = d.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    return None
    return None


def error_from_payload(
    payload: Any,
    provider_name: str,
    *,
    status: int | None,
    retry_after: float | None = None,
    text: str = "",
) -> UpstreamError:
    """An :class:`UpstreamError` from an error body in OpenAI's, Anthropic's or Google's shape.

    OpenAI: ``{"error": {"message", "type", "param", "code"}}``; Anthropic:
    ``{"type": "error", "error": {"type", "message"}}``; Google: ``{"error": {"code",
    "message", "status", "details"}}``. Anything else keeps the first 500 characters of
    the body as the message.
    """
    message: str | None = None
    error_type: str | None = None
    param: str | None = None
    code: Any = None
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        if isinstance(err.get("message"), str):
            message = err["message"]
        if isinstance(err.get("type"), str):
            error_type = err["type"]
        elif isinstance(err.get("status"), str):  # Google
            error_type = _GOOGLE_TYPES.get(err["status"], err["status"].lower())
            code = err["status"]
        if isinstance(err.get("param"), str):
            param = err["param"]
        if code is None and err.get("code") is not None and not isinstance(err.get("code"), int):
            code = err.get("code")
        if retry_after is None:
            retry_after = _google_retry_delay(err.get("details"))
    elif isinstance(err, str):  # {"error": "..."} (Ollama, llama.cpp, many proxies)
        message = err
    elif isinstance(payload, dict) and isinstance(payload.get("message"), str):
        message = payload["message"]
    if not message:
        snippet = text.strip()[:500]
        message = f"{provider_name} answered HTTP {status}" if status else f"{provider_name} failed"
        if snippet:
            message += f": {snippet}"
    retryable = status is None or status in (408, 429) or status >= 500
    details: list[Any] = [{"provider": provider_name, "upstream_status": status}]
    if code is not None:
        details[0]["code"] = code
    return UpstreamError(
        message,
        upstream_status=status,
        retryable=retryable,
        retry_after=retry_after,
        error_type=error_type,
        param=param,
        details=details,
    )


def error_from_response(resp: Any, provider_name: str) -> UpstreamError:
    """Map an HTTP error answer (body already read) to an :class:`UpstreamError`.

    ``resp``: an :class:`httpx.Response` or anything with its ``status_code``, ``headers``
    and ``text`` (the aiohttp transport's :class:`Response`).
    """
    text = ""
    payload: Any = None
    try:
        text = resp.text
        payload = _loads(text) if text else None
    except (ValueError, httpx.ResponseNotRead, UnicodeDecodeError):
        payload = None
    return error_from_payload(
        payload,
        provider_name,
        status=resp.status_code,
        retry_after=parse_retry_after(resp.headers),
        text=text,
    )


def bad_request(message: str, *, param: str | None = None, provider_name: str = "gateway") -> UpstreamError:
    """A request this provider cannot express: a 400 the router must not retry or fail over on."""
    return UpstreamError(
        message,
        upstream_status=400,
        retryable=False,
        error_type="invalid_request_error",
        param=param,
        details=[{"provider": provider_name, "upstream_status": None}],
    )


def _unreachable(base: str, exc: Exception) -> UpstreamError:
    reason = str(exc) or type(exc).__name__
    return UpstreamError(f"could not reach {base}: {reason}", upstream_status=None, retryable=True)


def _timed_out(base: str, timeout: float, exc: Exception) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"{base} did not answer within {timeout:g}s ({type(exc).__name__}); raise the deployment's "
        "timeout if the model is slow",
        upstream_status=None,
        retryable=True,
    )


def stream_ended(provider_name: str, reason: str = "") -> UpstreamError:
    msg = "stream ended before completion"
    if reason:
        msg += f": {reason}"
    details = [{"provider": provider_name}] if provider_name else []
    return UpstreamError(msg, upstream_status=None, retryable=True, details=details)


# --- SSE ------------------------------------------------------------------------------------


async def iter_sse(resp: Any, *, provider_name: str, timeout: float = 0.0) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` pairs of a ``text/event-stream`` body, as the WHATWG spec dispatches them.

    Comment lines (``:``) and ``id:``/``retry:`` fields are skipped; several ``data:`` lines
    make one event joined with ``\\n``; ``event`` is ``"message"`` when none was named
    (Anthropic names every event). A last event without its blank line is still dispatched.
    Transport failures while reading become ``UpstreamError("stream ended before completion
    ...")`` or :class:`UpstreamTimeout`; a clean end is left to the caller to judge.
    """
    event = ""
    data: list[str] = []
    try:
        async for line in resp.aiter_lines():
            if not line:
                if data:
                    yield event or "message", "\n".join(data)
                    data = []
                event = ""
                continue
            if line[0] == ":":
                continue
            field, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(
            f"stream ended before completion: no data for {timeout:g}s ({type(exc).__name__})",
            upstream_status=None,
            retryable=True,
        )
    except httpx.HTTPError as exc:
        raise stream_ended(provider_name, str(exc) or type(exc).__name__)
    if data:
        yield event or "message", "\n".join(data)


# --- transports -----------------------------------------------------------------------------


class Response:
    """A whole (non-streamed) answer: the attributes it shares with :class:`httpx.Response`."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class HttpxTransport:
    """Requests through one :class:`httpx.AsyncClient` (``client``, or one from :func:`make_client`).

    A client this transport made is replaced when it is used from a new event loop (its
    pooled connections belong to the old one); a ``client`` passed in is used as it is.
    """

    kind = "httpx"

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self._owns = client is None
        self._transport = transport
        self._trust_env = trust_env
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client = client if client is not None else make_client(transport=transport, trust_env=trust_env)

    def _client(self) -> httpx.AsyncClient:
        if self._owns:
            loop = asyncio.get_running_loop()
            if self._loop is not loop:
                if self._loop is not None:
                    self.client = make_client(transport=self._transport, trust_env=self._trust_env)
                self._loop = loop
        return self.client

    async def post(self, url: str, content: bytes, headers: dict[str, str], timeout: float, base: str) -> Any:
        try:
            return await self._client().post(
                url, content=content, headers=headers, timeout=timeout_for(timeout)
            )
        except httpx.TimeoutException as exc:
            raise _timed_out(base, timeout, exc)
        except httpx.HTTPError as exc:
            raise _unreachable(base, exc)

    async def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeout: float, base: str
    ) -> Any:
        client = self._client()
        req = client.build_request(
            "POST", url, content=content, headers=headers, timeout=timeout_for(timeout)
        )
        try:
            return await client.send(req, stream=True)
        except httpx.TimeoutException as exc:
            raise _timed_out(base, timeout, exc)
        except httpx.HTTPError as exc:
            raise _unreachable(base, exc)

    async def aclose(self) -> None:
        if self._owns and self._loop in (None, asyncio.get_running_loop()):
            await self.client.aclose()


class AiohttpTransport:
    """Requests through one ``aiohttp.ClientSession`` (made on first use, inside the running loop).

    About ten times less CPU per request than httpx (see the module doc); used when aiohttp
    is installed. Same pool size, timeouts and error mapping as :class:`HttpxTransport`.
    """

    kind = "aiohttp"

    def __init__(self, *, trust_env: bool = True, max_connections: int = MAX_CONNECTIONS) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        # aiohttp's trust_env looks proxies and .netrc up on every request (~180 µs here): pay
        # for it only when a proxy is configured.
        self._trust_env = trust_env and bool(urllib.request.getproxies())
        self._limit = max_connections
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[float, Any] = {}

    def _sess(self) -> Any:
        s = self._session
        loop = asyncio.get_running_loop()
        if s is None or s.closed or self._loop is not loop:
            # A session belongs to the loop it was made in; a provider used from a new loop
            # (tests, a restarted server) gets a new one and leaves the old to the old loop.
            self._loop = loop
            aiohttp = self._aiohttp
            s = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30.0, ttl_dns_cache=300),
                headers={"user-agent": USER_AGENT},
                trust_env=self._trust_env,
            )
        return s

    def _timeout(self, seconds: float) -> Any:
        t = self._timeouts.get(seconds)
        if t is None:
            t = self._timeouts[seconds] = self._aiohttp.ClientTimeout(
                total=None, connect=seconds, sock_connect=min(seconds, CONNECT_TIMEOUT), sock_read=seconds
            )
        return t

    async def post(self, url: str, content: bytes, headers: dict[str, str], timeout: float, base: str) -> Any:
        try:
            async with self._sess().post(
                url, data=content, headers=headers, timeout=self._timeout(timeout)
            ) as r:
                return Response(r.status, r.headers, await r.read())
        except TimeoutError as exc:
            raise _timed_out(base, timeout, exc)
        except self._aiohttp.ClientError as exc:
            raise _unreachable(base, exc)

    async def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeout: float, base: str
    ) -> Any:
        try:
            r = await self._sess().post(url, data=content, headers=headers, timeout=self._timeout(timeout))
        except TimeoutError as exc:
            raise _timed_out(base, timeout, exc)
        except self._aiohttp.ClientError as exc:
            raise _unreachable(base, exc)
        return _AiohttpStream(r, self._aiohttp.ClientError, base, timeout)

    async def aclose(self) -> None:
        s, self._session = self._session, None
        if s is not None and self._loop is asyncio.get_running_loop():
            await s.close()


class _AiohttpStream:
    """An open aiohttp answer with httpx's streaming surface; raises UpstreamError types only."""

    def __init__(self, r: Any, client_error: type[Exception], base: str, timeout: float) -> None:
        self._r = r
        self._client_error = client_error
        self._base = base
        self._timeout = timeout
        self._done = False
        self.status_code: int = r.status
        self.headers: Mapping[str, str] = r.headers
        self.content = b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    async def aread(self) -> bytes:
        try:
            self.content = await self._r.read()
        except TimeoutError as exc:
            raise _timed_out(self._base, self._timeout, exc)
        except self._client_error as exc:
            raise _unreachable(self._base, exc)
        self._done = True
        return self.content

    async def aiter_lines(self) -> AsyncIterator[str]:
        buf = b""
        try:
            async for chunk in self._r.content.iter_any():
                buf += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield (line[:-1] if line[-1:] == b"\r" else line).decode("utf-8", "replace")
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"stream ended before completion: no data for {self._timeout:g}s ({type(exc).__name__})",
                upstream_status=None,
                retryable=True,
            )
        except self._client_error as exc:
            raise stream_ended("", str(exc) or type(exc).__name__)
        self._done = True
        if buf:
            yield buf.rstrip(b"\r").decode("utf-8", "replace")

    async def aclose(self) -> None:
        if self._done:
            self._r.release()
        else:
            self._r.close()  # unread body: the connection cannot be reused


def make_transport(
    backend: str = "auto",
    *,
    client: httpx.AsyncClient | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> HttpxTransport | AiohttpTransport:
    """``"httpx"``, ``"aiohttp"``, or ``"auto"``: aiohttp when it is installed, else httpx.

    A ``client`` or ``transport`` (httpx objects: the test seam) always means httpx.
    """
    if client is not None or transport is not None or backend == "httpx":
        return HttpxTransport(client, transport=transport)
    if backend == "aiohttp":
        return AiohttpTransport()
    if backend != "auto":
        raise ValueError(f"unknown HTTP backend {backend!r}: use 'auto', 'httpx' or 'aiohttp'")
    try:
        return AiohttpTransport()
    except ImportError:
        return HttpxTransport()


# --- base class -----------------------------------------------------------------------------


class HttpProvider:
    """What the HTTP providers share: the transport, ``post_json`` and ``open_stream``.

    ``backend``: ``"auto"`` (aiohttp when installed, else httpx), ``"httpx"`` or ``"aiohttp"``.
    ``client``: an httpx client to use (not closed by :meth:`aclose`); ``transport``: an httpx
    transport for the client this provider makes (``httpx.MockTransport``: the test seam).
    """

    name = "http"
    default_base = ""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: str = "auto",
    ) -> None:
        self._http = make_transport(backend, client=client, transport=transport)

    @property
    def backend(self) -> str:
        """``"httpx"`` or ``"aiohttp"``: what this provider sends its requests with."""
        return self._http.kind

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The httpx client (None with the aiohttp backend)."""
        return self._http.client if isinstance(self._http, HttpxTransport) else None

    async def aclose(self) -> None:
        await self._http.aclose()

    def base(self, dep: Deployment) -> str:
        return (dep.api_base or self.default_base).rstrip("/")

    def headers(self, dep: Deployment) -> dict[str, str]:  # pragma: no cover - overridden
        return dict(dep.headers)

    async def post_json(self, dep: Deployment, url: str, body: Any) -> Any:
        """POST ``body`` as JSON and return the decoded JSON answer, or raise an UpstreamError."""
        resp = await self._http.post(url, dumps(body), self.headers(dep), dep.timeout, self.base(dep))
        if resp.status_code >= 300:
            raise error_from_response(resp, self.name)
        try:
            return _loads(resp.content)
        except ValueError:
            raise UpstreamError(
                f"{self.name} answered HTTP {resp.status_code} with a body that is not JSON: "
                f"{resp.text[:200]!r}",
                upstream_status=resp.status_code,
                retryable=True,
            )

    async def open_stream(self, dep: Deployment, url: str, body: Any) -> Any:
        """Send a streaming request; return the open response once the upstream said 200.

        Raises (before any chunk) for an error status, a JSON error answered instead of a
        stream, a timeout or an unreachable upstream. The caller must ``aclose`` the response
        and read it with :func:`iter_sse`.
        """
        resp = await self._http.stream(url, dumps(body), self.headers(dep), dep.timeout, self.base(dep))
        ctype = resp.headers.get("content-type", "")
        if resp.status_code < 300 and not ctype.startswith("application/json"):
            return resp
        try:
            await resp.aread()
        except httpx.TimeoutException as exc:
            raise _timed_out(self.base(dep), dep.timeout, exc)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base(dep), exc)
        finally:
            await resp.aclose()
        if resp.status_code >= 300:
            raise error_from_response(resp, self.name)
        try:
            payload = _loads(resp.content)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "error" in payload:
            raise error_from_payload(payload, self.name, status=None)
        raise UpstreamError(
            f"{self.name} answered a JSON document where an event stream was expected: {resp.text[:200]!r}",
            upstream_status=resp.status_code,
            retryable=False,
        )


# --- legacy completions on a chat API (Anthropic, Gemini) -----------------------------------

_COMPLETION_TO_CHAT = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "user",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stream_options",
)


def completion_as_chat(body: dict[str, Any], provider_name: str) -> dict[str, Any]:
    """A legacy ``/completions`` body as a chat body: the prompt becomes one user message.

    Only one prompt string is accepted; ``echo``, ``suffix``, ``logprobs`` and ``best_of > 1``
    have no chat equivalent and are refused with a 400 rather than silently ignored.
    """
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request(
            f"{provider_name} deployments take one prompt string on /v1/completions "
            "(no batches or token ids): send one prompt per request, or use /v1/chat/completions",
            param="prompt",
            provider_name=provider_name,
        )
    for key, bad in (
        ("echo", bool(body.get("echo"))),
        ("suffix", bool(body.get("suffix"))),
        ("logprobs", body.get("logprobs") is not None),
        ("best_of", (body.get("best_of") or 1) > 1),
    ):
        if bad:
            raise bad_request(
                f"{provider_name} deployments serve /v1/completions through a chat model, which "
                f"has no '{key}': remove it or route to an OpenAI-compatible deployment",
                param=key,
                provider_name=provider_name,
            )
    chat = {k: body[k] for k in _COMPLETION_TO_CHAT if k in body}
    chat["messages"] = [{"role": "user", "content": prompt}]
    return chat


def chat_as_completion(resp: ChatCompletion) -> TextCompletion:
    """A ``chat.completion`` answer as a ``text_completion`` answer."""
    out: TextCompletion = {
        "id": resp.get("id"),
        "object": "text_completion",
        "created": resp.get("created"),
        "model": resp.get("model"),
        "choices": [
            {
                "index": c.get("index", i),
                "text": (c.get("message") or {}).get("content") or "",
                "logprobs": None,
                "finish_reason": c.get("finish_reason"),
            }
            for i, c in enumerate(resp.get("choices") or [])
        ],
    }
    if "usage" in resp:
        out["usage"] = resp["usage"]
    return out


async def chat_chunks_as_completion(
    chunks: AsyncIterator[ChatChunk],
) -> AsyncIterator[TextCompletion]:
    """``chat.completion.chunk`` dicts as ``text_completion`` chunks (role-only chunks dropped)."""
    try:
        async for ch in chunks:
            choices: list[CompletionChoice] = []
            for i, c in enumerate(ch.get("choices") or []):
                text = (c.get("delta") or {}).get("content") or ""
                finish = c.get("finish_reason")
                if text or finish:
                    choices.append(
                        {"index": c.get("index", i), "text": text, "logprobs": None, "finish_reason": finish}
                    )
            usage = ch.get("usage")
            if not choices and not usage:
                continue
            out: TextCompletion = {
                "id": ch.get("id"),
                "object": "text_completion",
                "created": ch.get("created"),
                "model": ch.get("model"),
                "choices": choices,
            }
            if usage:
                out["usage"] = usage
            yield out
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()

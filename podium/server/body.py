"""Reading request bodies with a size limit, gzip/deflate, and clear errors.

Hostile bodies are bounded three ways: the compressed size (``PODIUM_MAX_REQUEST_BYTES``,
checked while reading), the inflated size (the same limit, checked while inflating, in one
streaming pass with at most :data:`MAX_GZIP_MEMBERS` gzip members and
:data:`INFLATE_SECONDS` of work), and the parsed JSON (finite numbers only, at most
:data:`podium.core.records.MAX_JSON_DEPTH` levels). Inflating and parsing large bodies run
in a worker thread, so one slow request never stalls the event loop.

:class:`StrictJSONRoute` applies the same JSON rules to routes whose body FastAPI parses
into a model, so every JSON body route behaves the same.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from podium.core.records import MAX_JSON_DEPTH, format_path, json_problem
from podium.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "INFLATE_SECONDS",
    "MAX_GZIP_MEMBERS",
    "RefuseNulMiddleware",
    "StrictJSONRoute",
    "inflate",
    "loads",
    "parse_json",
    "read_body",
    "read_json",
]

#: gzip allows concatenated members; real clients send one. Thousands of empty members are an attack.
MAX_GZIP_MEMBERS = 1000
#: Inflating a body that fits the size limit takes milliseconds; give up (400) after this.
INFLATE_SECONDS = 5.0
#: Compressed input is fed to zlib in slices of this size, so no step copies more than this.
_FEED = 16 * 1024
#: Bodies at least this large are inflated and parsed in a worker thread, off the event loop.
_OFF_LOOP_BYTES = 64 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(_too_big(int(declared), limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(_too_big(size, limit))
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = (request.headers.get("content-encoding") or "identity").lower().strip()
    if encoding in ("identity", ""):
        return body
    if encoding in ("gzip", "deflate"):
        if not body:
            return body
        return await run_in_threadpool(inflate, body, encoding, limit)
    raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or none")


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate a gzip (one or more members) or zlib ``deflate`` body in one streaming pass.

    Raises :class:`PayloadTooLarge` once the output passes ``limit`` (nothing past it is
    inflated), and :class:`BadRequest` for invalid or truncated data, more than
    :data:`MAX_GZIP_MEMBERS` members, or more than :data:`INFLATE_SECONDS` of work.
    """
    gzip = encoding == "gzip"
    wbits = 16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS
    view = memoryview(body)
    parts: list[bytes] = []
    size = pos = members = 0
    deadline = time.monotonic() + INFLATE_SECONDS
    while pos < len(body):
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise BadRequest(
                f"gzip body has more than {MAX_GZIP_MEMBERS} members; compress the body as one gzip stream"
            )
        d = zlib.decompressobj(wbits)
        while not d.eof:
            if pos >= len(body):
                raise BadRequest(f"body is truncated {encoding} data; check Content-Encoding")
            if time.monotonic() > deadline:
                raise BadRequest(
                    f"inflating the {encoding} body took over {INFLATE_SECONDS:g} s; send it uncompressed or smaller"
                )
            feed = view[pos : pos + _FEED]
            try:
                out = d.decompress(feed, limit + 1 - size)
            except zlib.error as e:
                raise BadRequest(f"body is not valid {encoding} data ({e}); check Content-Encoding")
            size += len(out)
            if size > limit or d.unconsumed_tail:
                raise PayloadTooLarge(_too_big(size, limit, decompressed=True))
            parts.append(out)
            pos += len(feed) - len(d.unused_data)  # unused_data: at most one feed slice is copied
        if not gzip:
            break  # a zlib stream is one member; trailing bytes are ignored
    return b"".join(parts)


def parse_json(body: bytes, *, max_depth: int = MAX_JSON_DEPTH, what: str = "body") -> Any:
    """``json.loads`` that refuses what the store cannot keep identically on SQLite and
    PostgreSQL: NaN, Infinity and out-of-range numbers (``1e999``), and nesting deeper than
    ``max_depth``. Errors are 400s that name the field path."""
    if b"\\u0000" in body:
        # PostgreSQL cannot store NUL in text or JSON; SQLite would store it. Same data on both.
        body = _NUL_ESCAPE.sub(rb"\1\\ufffd", body)
    try:
        doc = loads(body)  # NaN, Infinity and 1e999 become floats that json_problem names below
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, or an integer over 4300 digits
        raise BadRequest(
            f"{what} is not valid JSON: {e}",
            details=[{"line": getattr(e, "lineno", None), "column": getattr(e, "colno", None)}],
        )
    except RecursionError:
        raise BadRequest(
            f"{what} nests JSON deeper than {max_depth} levels of objects/arrays (MAX_JSON_DEPTH); flatten it",
            details=[{"field": None, "message": f"deeper than {max_depth} levels"}],
        )
    problem = json_problem(doc, max_depth)
    if problem is not None:
        field = format_path(problem[0]) or None
        raise BadRequest(
            f"{what} field {field} {problem[1]}" if field else f"{what} {problem[1]}",
            details=[{"field": field, "message": problem[1]}],
        )
    return doc


def loads(body: bytes | str) -> Any:
    """``json.loads`` with msgspec's parser (C, ~2x faster, exact big integers) where the two agree.

    msgspec refuses NaN/Infinity, 1e999, lone surrogates, non-UTF-8 encodings and very deep
    nesting: those bodies go to ``json.loads``, so every body parses exactly as ``json.loads``
    parses it, and errors keep its messages."""
    try:
        return _decode(body)
    except (msgspec.DecodeError, RecursionError):
        return json.loads(body)


_decode = msgspec.json.Decoder().decode


async def parse_json_async(body: bytes) -> Any:
    if len(body) >= _OFF_LOOP_BYTES:
        return await run_in_threadpool(parse_json, body)
    return parse_json(body)


async def read_json(request: Request, limit: int) -> Any:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {ctype!r} is not supported here; send application/json")
    body = await read_body(request, limit)
    return await parse_json_async(body)


class StrictJSONRoute(APIRoute):
    """An ``APIRoute`` whose JSON body (parsed by FastAPI into a model or ``Body()``) goes
    through :func:`read_body` and :func:`parse_json` first: the same size limit, gzip
    handling, finite-number and depth rules as :func:`read_json`. A NUL character in a path
    or query parameter is a 400. Set it with ``APIRouter(route_class=StrictJSONRoute)``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        has_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            _refuse_nul(request)
            if has_body and _is_json(request.headers.get("content-type")):
                body = await read_body(request, request.app.state.podium.settings.max_request_bytes)
                request._body = body  # what FastAPI reads next
                if body:
                    request._json = await parse_json_async(body)
            return await handler(request)

        return strict


def _refuse_nul(request: Request) -> None:
    """PostgreSQL cannot compare or store NUL in text: a NUL in a path or query parameter is a
    400 on both databases (not a 500 on one of them)."""
    params = [(f"path.{k}", v) for k, v in request.path_params.items()]
    if "%00" in request.url.query:
        params += [(f"query.{k}", v) for k, v in request.query_params.multi_items()]
    for field, value in params:
        if isinstance(value, str) and "\x00" in value:
            raise BadRequest(
                f"{field} contains a NUL character (\\u0000 or %00); remove it",
                details=[{"field": field, "message": "contains NUL"}],
            )


class RefuseNulMiddleware:
    """ASGI middleware: a NUL (``%00``) in the query string, or in the path outside
    ``/api/v1``, is a 400 before any route runs (in Langfuse's error shape under
    ``/api/public``). PostgreSQL refuses NUL in text, so such a request was a 500 there and
    not on SQLite. ``/api/v1`` routes name a path parameter holding NUL themselves
    (:class:`StrictJSONRoute`); ``/v1/`` (gateway, OTLP) keeps its own error format."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path: str = scope.get("path", "")
            query: bytes = scope.get("query_string", b"")
            if not path.startswith("/v1/") and (
                b"%00" in query or ("\x00" in path and not path.startswith("/api/v1/"))
            ):
                fields = sorted({f"query.{k}" for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                                 if "\x00" in k or "\x00" in v}) or ["path"]
                message = f"{fields[0]} contains a NUL character (\\u0000 or %00); remove it"
                body: dict[str, Any] = (
                    {"message": message, "error": "bad_request"} if path.startswith("/api/public/")
                    else {"error": {"code": "bad_request", "message": message,
                                    "details": [{"field": f, "message": "contains NUL"} for f in fields]}}
                )
                await JSONResponse(body, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# A \u0000 escape that is not itself escaped (an even number of backslashes before it).
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def _too_big(size: int, limit: int, *, decompressed: bool = False) -> str:
    what = "decompressed body" if decompressed else "body"
    return (
        f"{what} of {size} bytes is over the limit of {limit} bytes (PODIUM_MAX_REQUEST_BYTES); "
        "send smaller batches"
    )

"""Reading request bodies with a size limit, gzip/deflate, and clear errors."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from fastapi import Request

from podium.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["read_body", "read_json"]


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
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
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        parts: list[bytes] = []
        size = 0
        rest = body
        while rest:  # gzip allows several concatenated members
            d = zlib.decompressobj(wbits)
            try:
                out = d.decompress(rest, limit + 1 - size)
            except zlib.error as e:
                raise BadRequest(f"body is not valid {encoding} data ({e}); check Content-Encoding")
            size += len(out)
            if size > limit or d.unconsumed_tail:
                raise PayloadTooLarge(_too_big(size, limit, decompressed=True))
            if not d.eof:
                raise BadRequest(f"body is truncated {encoding} data; check Content-Encoding")
            parts.append(out)
            rest = d.unused_data if encoding == "gzip" else b""
        return b"".join(parts)
    raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or none")


async def read_json(request: Request, limit: int) -> Any:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {ctype!r} is not supported here; send application/json")
    body = await read_body(request, limit)
    if b"\\u0000" in body:
        # PostgreSQL cannot store NUL in text or JSON; SQLite would store it. Same data on both.
        body = _NUL_ESCAPE.sub(rb"\1\\ufffd", body)
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(
            f"body is not valid JSON: {e}",
            details=[{"line": getattr(e, "lineno", None), "column": getattr(e, "colno", None)}],
        )
    except RecursionError:
        raise BadRequest("body nests JSON too deeply; flatten it (keep nesting under ~500 levels)")


# A \u0000 escape that is not itself escaped (an even number of backslashes before it).
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def _reject_constant(name: str) -> None:
    raise BadRequest(f"body contains {name}, which is not valid JSON; send null or a string instead")


def _too_big(size: int, limit: int, *, decompressed: bool = False) -> str:
    what = "decompressed body" if decompressed else "body"
    return (
        f"{what} of {size} bytes is over the limit of {limit} bytes (PODIUM_MAX_REQUEST_BYTES); "
        "send smaller batches"
    )

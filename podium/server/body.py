"""Reading request bodies with a size limit, gzip/deflate, and clear errors."""

from __future__ import annotations

import json
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
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, limit + 1)
        except zlib.error as e:
            raise BadRequest(f"body is not valid {encoding} data ({e}); check Content-Encoding")
        if len(out) > limit or d.unconsumed_tail:
            raise PayloadTooLarge(_too_big(len(out), limit, decompressed=True))
        return out
    raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or none")


async def read_json(request: Request, limit: int) -> Any:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {ctype!r} is not supported here; send application/json")
    body = await read_body(request, limit)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(
            f"body is not valid JSON: {e}",
            details=[{"line": getattr(e, "lineno", None), "column": getattr(e, "colno", None)}],
        )


def _too_big(size: int, limit: int, *, decompressed: bool = False) -> str:
    what = "decompressed body" if decompressed else "body"
    return (
        f"{what} of {size} bytes is over the limit of {limit} bytes (PODIUM_MAX_REQUEST_BYTES); "
        "send smaller batches"
    )

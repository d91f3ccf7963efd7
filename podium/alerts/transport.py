"""HTTP for the channels: POST a JSON body and turn the answer into a status code or a
:class:`~podium.alerts.base.DeliveryError` (retryable for 5xx, 429, timeouts and connection errors)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from podium.alerts.base import DeliveryError

__all__ = ["check_url", "post_json", "safe_target"]


def check_url(url: str, field_name: str = "url") -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ValueError(f"{field_name} must be an http(s) URL (or env:NAME naming a variable that holds one)")
    return url


def safe_target(url: str) -> str:
    """``scheme://host[:port]``: webhook URLs carry their secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def post_json(url: str, body: dict[str, Any], *, headers: dict[str, str] | None = None,
              timeout_s: float = 10.0) -> int:
    import httpx

    try:
        r = httpx.post(url, json=body, headers=headers or {}, timeout=timeout_s)
    except httpx.TimeoutException as e:
        raise DeliveryError(f"timed out after {timeout_s:g}s ({type(e).__name__})", retryable=True) from e
    except httpx.TransportError as e:
        raise DeliveryError(f"cannot reach the destination: {type(e).__name__}: {e}", retryable=True) from e
    if 200 <= r.status_code < 300:
        return r.status_code
    text = r.text[:300].strip()
    raise DeliveryError(f"HTTP {r.status_code}" + (f": {text}" if text else ""), status=r.status_code,
                        retryable=r.status_code >= 500 or r.status_code in (408, 429))

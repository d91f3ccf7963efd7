"""OpenTelemetry-format ids and the per-trace sampling decision.

Ids come from :func:`random.getrandbits`: cheap (a few hundred nanoseconds), not
cryptographic, and safe across ``fork()`` because the :mod:`random` module reseeds its
global generator in the child.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["is_sampled", "new_span_id", "new_trace_id", "sample_bound"]

_getrandbits = random.getrandbits
_TRACE_ID_SPACE = 1 << 64  # sampling looks at the low 64 bits of the trace id, as OTel's ratio sampler does


def new_trace_id() -> str:
    """A 32-hex-character trace id (never all zeros, which OpenTelemetry reserves)."""
    bits = _getrandbits(128)
    while not bits:  # pragma: no cover - one chance in 2**128
        bits = _getrandbits(128)
    return f"{bits:032x}"


def new_span_id() -> str:
    """A 16-hex-character span id (never all zeros)."""
    bits = _getrandbits(64)
    while not bits:  # pragma: no cover
        bits = _getrandbits(64)
    return f"{bits:016x}"


def sample_bound(rate: float) -> int:
    """The threshold :func:`is_sampled` compares against, computed once per client."""
    return round(rate * _TRACE_ID_SPACE)


def is_sampled(trace_id: str, bound: int) -> bool:
    """Keep the trace when its low 64 bits fall below ``bound``.

    Deterministic in the trace id, so every span of a trace (and every process that
    sees the same id) takes the same decision.
    """
    if bound >= _TRACE_ID_SPACE:
        return True
    if bound <= 0:
        return False
    try:
        return int(trace_id[-16:], 16) < bound
    except ValueError:  # not hex (a custom id): fall back to a stable hash of the text
        return int.from_bytes(hashlib.blake2b(trace_id.encode(), digest_size=8).digest(), "big") < bound

"""How many threads the local models use by default."""

from __future__ import annotations

import os

__all__ = ["default_threads"]


def default_threads() -> int:
    """All usable cores but one (at least 1, at most 8).

    ggml's and onnxruntime's worker threads spin while they wait for each other, so a
    thread on a core that something else (the HTTP server, a test worker, a load
    generator) is using can slow decoding tenfold (46 -> 4 tok/s measured on 2 cores).
    Leaving one core free keeps the server responsive; past ~8 threads a 135M model
    gains nothing.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))

"""Comparing registered GGUF versions (``podium registry compare``, bench/quantization.py): size,
quantization, tokens/s through the gateway (``registry:/NAME@N`` as the model), and perplexity of
a fixed text on llama.cpp. The eval-suite pass rate is the CLI's (it runs the suite through
``podium.experiments``, which sits above this layer)."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TEXT", "PROMPTS", "VersionFigures", "gateway_tokens_per_s", "perplexity_of", "quant_of"]

#: The fixed text perplexity is measured on (override with ``--text FILE``): plain English prose.
DEFAULT_TEXT = (
    "The library opens at nine in the morning and closes at six in the evening. Visitors can borrow up to five "
    "books at a time, and each loan lasts three weeks. If a book is returned late, a small fee is charged for "
    "every day it is overdue. The reading room on the second floor is quiet, and phones must be switched off. "
    "Children are welcome, and there is a story hour every Saturday morning. Members can also reserve a computer "
    "for one hour a day, print documents for a few cents a page, and ask the staff for help finding information."
)
#: The chat requests tokens/s is measured with (temperature 0, ``max_tokens`` each).
PROMPTS = (
    "Write a short story about a lighthouse keeper during a storm.",
    "Explain how a bicycle works to a ten-year-old.",
    "Describe a busy market in a small town on a sunny morning.",
)


_QUANT_IN_NAME = re.compile(r"[.\-_]((?:[QqIi]Q?\d_[A-Za-z0-9_]+?|[Ff]16|[Ff]32|[Bb][Ff]16))\.gguf$")


@dataclass
class VersionFigures:
    """One version's row of the comparison."""

    ref: str  # NAME@N
    quant: str | None = None
    size_bytes: int | None = None
    tokens_per_s: float | None = None
    perplexity: float | None = None
    pass_rate: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quant_of(version: dict[str, Any]) -> str | None:
    """A version's quantization: its ``metadata.quant`` (``podium tune package`` records it), else the
    file name's (``model.Q4_K_M.gguf`` -> ``q4_k_m``)."""
    q = (version.get("metadata") or {}).get("quant")
    if q:
        return str(q)
    uri = str((version.get("artifact") or {}).get("uri") or "")
    m = _QUANT_IN_NAME.search(Path(uri).name)
    return m.group(1).lower() if m else None


def perplexity_of(path: Path, text: str, *, threads: int | None = None) -> float:
    """Perplexity of ``text`` under the GGUF at ``path`` (llama.cpp, every token scored)."""
    from podium.inference.llama import LocalChatModel

    model = LocalChatModel(path, n_threads=threads, n_ctx=2048)
    try:
        return model.perplexity(text)
    finally:
        model.close()


def gateway_tokens_per_s(base_url: str, api_key: str, model: str, *, max_tokens: int = 64,
                         prompts: tuple[str, ...] = PROMPTS, timeout: float = 300.0) -> tuple[float, int, float]:
    """(tokens/s, completion tokens, seconds) of non-streamed chat completions of ``model`` through the
    gateway at ``base_url`` (one warm-up call first, so the model load is not timed; cache bypassed)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}", "Cache-Control": "no-store"}
    url = f"{base_url.rstrip('/')}/v1/chat/completions"
    with httpx.Client(timeout=timeout, headers=headers) as c:

        def ask(prompt: str, n: int) -> int:
            r = c.post(url, json={"model": model, "messages": [{"role": "user", "content": prompt}],
                                  "max_tokens": n, "temperature": 0})
            if r.status_code != 200:
                try:
                    msg = r.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    msg = r.text
                raise RuntimeError(f"{model}: the gateway answered {r.status_code}: {msg}")
            return int(r.json()["usage"]["completion_tokens"])

        ask("Hi", 1)
        tokens, t0 = 0, time.perf_counter()
        for p in prompts:
            tokens += ask(p, max_tokens)
        seconds = time.perf_counter() - t0
    return (tokens / seconds if seconds > 0 else 0.0), tokens, seconds

"""Occlusion for the local model: which parts of the prompt made a fixed answer likely.

For chat ``messages`` and a fixed ``response``, drop one segment (a word, a sentence or a whole
message) of the prompt at a time and measure how much less likely the same response becomes:
``weight = log p(response | messages) - log p(response | messages without the segment)``, in
nats. A large positive weight: the answer leans on that segment (it copies a fact from it, or
follows its instruction); near zero: the segment does not matter; negative: the answer is more
likely without it. One forward pass per segment through
:meth:`~podium.inference.llama.LocalChatModel.response_logprobs` (llama.cpp, which keeps the
common prefix's KV cache between passes); a budget (``max_evaluations``) merges neighbouring
segments into groups when there are more segments than passes allowed.

The response's own tokens come back too (``extra.response_tokens``: each token's log-probability
given the full prompt): the least likely tokens are where the model was least sure of the answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from podium.errors import ValidationFailed
from podium.explain.result import Explanation, Segment
from podium.explain.segments import GRANULARITIES, merge, split

__all__ = ["DEFAULT_MAX_EVALUATIONS", "LogprobModel", "default_model", "occlusion"]

DEFAULT_MAX_EVALUATIONS = 64


class LogprobModel(Protocol):
    def response_logprobs(self, messages: Sequence[Mapping[str, Any]], response: str, *,
                          cancel: threading.Event | None = None) -> Any: ...


_MODEL: Any = None
_LOCK = threading.Lock()


def default_model() -> Any:
    """The process-wide local SmolLM2 (``PODIUM_LOCAL_MODEL_PATH`` / threads / context from the
    settings), loaded on first use."""
    global _MODEL
    if _MODEL is None:
        with _LOCK:
            if _MODEL is None:
                from podium.config import Settings
                from podium.inference.llama import LocalChatModel

                s = Settings()
                _MODEL = LocalChatModel(s.local_model_path, n_threads=s.local_threads, n_ctx=s.local_context)
    return _MODEL


def _check(messages: Any, response: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise ValidationFailed("messages must be a non-empty list of {role, content}",
                               details=[{"loc": "target.messages"}])
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            raise ValidationFailed(f"messages[{i}] must be {{role, content}} with string values",
                                   details=[{"loc": f"target.messages[{i}]"}])
        out.append({"role": m["role"], "content": m["content"]})
    if not isinstance(response, str) or not response.strip():
        raise ValidationFailed("response must be the (non-empty) answer to explain; generate it first, e.g. "
                               "with the playground or POST /v1/chat/completions", details=[{"loc": "target.response"}])
    return out


def occlusion(messages: Sequence[Mapping[str, Any]], response: str, *, granularity: str = "sentence",
              roles: Sequence[str] = ("system", "user"), max_evaluations: int = DEFAULT_MAX_EVALUATIONS,
              model: LogprobModel | None = None, cancel: threading.Event | None = None) -> Explanation:
    """Drop each segment of the ``roles`` messages and weigh it by the fall of log p(response).

    ``granularity``: ``word``, ``sentence`` (default) or ``message``. ``max_evaluations`` counts
    the full-prompt pass too; with fewer passes than segments, neighbours are merged."""
    msgs = _check(list(messages), response)
    if granularity not in GRANULARITIES:
        raise ValidationFailed(f"granularity must be one of {', '.join(GRANULARITIES)}",
                               details=[{"loc": "granularity"}])
    if max_evaluations < 2:
        raise ValidationFailed("max_evaluations must be at least 2 (the full prompt and one ablation)",
                               details=[{"loc": "max_evaluations"}])
    m = model if model is not None else default_model()
    t0 = time.perf_counter()
    spans: list[tuple[int, int, int]] = []  # (message index, start, end)
    for i, msg in enumerate(msgs):
        if msg["role"] in roles:
            spans.extend((i, s, e) for s, e in split(msg["content"], granularity))
    if not spans:
        raise ValidationFailed(f"nothing to occlude: no {'/'.join(roles)} message has any text",
                               details=[{"loc": "target.messages"}])
    budget = max_evaluations - 1
    if len(spans) > budget:  # merge neighbours within each message, budget shared by length
        per_msg: dict[int, list[tuple[int, int]]] = {}
        for i, s, e in spans:
            per_msg.setdefault(i, []).append((s, e))
        merged: list[tuple[int, int, int]] = []
        left = budget
        items = sorted(per_msg.items())
        total = len(spans)
        for j, (i, ss) in enumerate(items):
            share = left if j == len(items) - 1 else max(1, round(budget * len(ss) / total))
            share = max(1, min(share, left - (len(items) - 1 - j)))
            merged.extend((i, s, e) for s, e in merge(ss, share))
            left -= share
        spans = merged

    full = m.response_logprobs(msgs, response, cancel=cancel)
    base = float(sum(full.logprobs))
    segments: list[Segment] = []
    for i, s, e in spans:
        content = msgs[i]["content"]
        ablated = [dict(x) for x in msgs]
        ablated[i]["content"] = (content[:s].rstrip() + " " + content[e:].lstrip()).strip()
        lp = float(sum(m.response_logprobs(ablated, response, cancel=cancel).logprobs))
        segments.append(Segment(content[s:e], s, e, base - lp, message=i))
    tokens = []
    pos = 0
    for piece, lp in zip(full.tokens, full.logprobs, strict=True):
        tokens.append({"text": piece, "start": pos, "end": pos + len(piece), "logprob": round(float(lp), 4)})
        pos += len(piece)
    return Explanation(
        method="occlusion",
        target={"kind": "local-model", "granularity": granularity},
        segments=segments, seconds=time.perf_counter() - t0, evaluations=len(spans) + 1, value=base,
        extra={"response_logprob": round(base, 4), "response_tokens": tokens,
               "least_likely": sorted(range(len(tokens)), key=lambda k: tokens[k]["logprob"])[:5]},
    )

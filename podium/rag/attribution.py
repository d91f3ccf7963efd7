"""Context attribution: which retrieved chunks (and which of their sentences) drove an answer.

Both methods work on generic chat ``messages`` (what a generation span recorded) plus the list of
source texts found in them (what the retrieval span recorded), so traces from other libraries
work too. A *unit* is what gets ablated: a whole source (``level="chunk"``) or one sentence of a
source (``level="sentence"``). Ablating a unit deletes its text from the prompt messages; the
fixed response is then re-scored by a model with ``response_logprobs(messages, response)``
(:meth:`podium.inference.llama.LocalChatModel.response_logprobs`).

The value scored for each context is ContextCite's: the logit of the probability of the whole
response, ``log p - log(1 - p)`` with ``log p = sum(token logprobs)`` (their ``logit_prob``
aggregate; for a response of many tokens it is close to ``log p``).

- :func:`leave_one_out`: one pass with everything, one pass per unit with that unit removed;
  a unit's weight is how much the value drops without it. ``1 + units`` passes.
- :func:`context_cite`: ContextCite (Cohen-Wang et al., NeurIPS 2024): ``num_ablations`` random
  masks (each unit kept with probability ``keep_prob``), the value under each ablated context,
  and a sparse linear surrogate (scikit-learn's ``Lasso``) from masks to values; a unit's weight
  is its coefficient. The surrogate's fit is reported (R^2 on the ablations and the correlation
  of 4-fold held-out predictions) so a reader can tell whether the weights mean anything.
  ``1 + num_ablations`` passes (the first is the full context, reported as ``full_value``).

Both take a budget (``max_passes``, ``max_seconds``): leave-one-out leaves the units it could not
reach unscored (``weight`` None), ContextCite fits on the ablations it got (at least 8) and says
``truncated``. Chunk weights at sentence level are the sum of their sentences' weights (the
surrogate is additive, so that is its prediction for removing the whole chunk).

scikit-learn is an optional dependency (``pip install 'podium[explain]'``); leave-one-out needs
only numpy.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from podium.errors import BadRequest, ConfigurationError, ServiceUnavailable, ValidationFailed

__all__ = [
    "LEVELS",
    "METHODS",
    "Attribution",
    "LogProbModel",
    "Source",
    "Unit",
    "ablate",
    "context_cite",
    "leave_one_out",
    "locate",
    "normalise_messages",
    "response_text",
    "response_value",
    "sources_from_retrieval",
    "split_sentences",
]

METHODS: tuple[str, ...] = ("leave-one-out", "context-cite")
LEVELS: tuple[str, ...] = ("chunk", "sentence")
Level = Literal["chunk", "sentence"]
MIN_ABLATIONS = 8
MAX_UNITS = 256
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|$)")


class LogProbModel(Protocol):
    """What attribution needs from a model: log p of each token of a fixed response."""

    def response_logprobs(self, messages: Sequence[Mapping[str, Any]], response: str, *,
                          cancel: threading.Event | None = None) -> Any:  # a TextScore: ``.logprobs``
        ...


@dataclass(frozen=True)
class Source:
    """A retrieved chunk: its id (chunk id, document id, or its position) and its text."""

    id: str
    text: str
    title: str | None = None


@dataclass(frozen=True)
class Unit:
    """What one ablation removes: ``source`` (index into the sources), a character span
    ``[start, end)`` of message ``message``'s content, and its text."""

    source: int
    message: int
    start: int
    end: int
    text: str


@dataclass
class Attribution:
    """The result of one attribution; :meth:`to_dict` is what the API stores and returns."""

    method: str
    level: str
    sources: list[Source]
    units: list[Unit]
    weights: list[float | None]  # one per unit
    full_value: float
    response_tokens: int
    passes: int
    seconds: float
    truncated: bool = False
    fit: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def chunk_weights(self) -> list[float | None]:
        out: list[float | None] = []
        for i in range(len(self.sources)):
            ws = [w for u, w in zip(self.units, self.weights, strict=True) if u.source == i]
            out.append(None if not ws or any(w is None for w in ws) else float(sum(w for w in ws if w is not None)))
        return out

    def top_source(self) -> int | None:
        """Index of the source with the largest weight (None when nothing was scored)."""
        cw = self.chunk_weights()
        scored = [(w, i) for i, w in enumerate(cw) if w is not None]
        return max(scored)[1] if scored else None

    def to_dict(self) -> dict[str, Any]:
        cw = self.chunk_weights()
        order = sorted(range(len(self.sources)), key=lambda i: (cw[i] is None, -(cw[i] or 0.0), i))
        rank = {i: r + 1 for r, i in enumerate(order)}
        chunks: list[dict[str, Any]] = []
        for i, s in enumerate(self.sources):
            pairs = [(u.text, w) for u, w in zip(self.units, self.weights, strict=True) if u.source == i]
            pairs.sort(key=lambda p: (p[1] is None, -(p[1] or 0.0)))
            sents = [{"text": text, "weight": w} for text, w in pairs]
            chunks.append({"index": i, "id": s.id, "title": s.title, "text": s.text, "weight": cw[i],
                           "rank": rank[i], "sentences": sents if self.level == "sentence" else []})
        chunks.sort(key=lambda d: int(d["rank"]))
        return {"method": self.method, "level": self.level, "chunks": chunks, "full_value": self.full_value,
                "response_tokens": self.response_tokens, "passes": self.passes,
                "seconds": round(self.seconds, 3), "truncated": self.truncated, "fit": self.fit,
                "params": self.params, "top_chunk": self.sources[order[0]].id if cw[order[0]] is not None else None}


# --- messages, sources, units -----------------------------------------------------------------


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        parts = [str(p["text"]) for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
        return "".join(parts) if parts else None
    return None


def normalise_messages(raw: Any) -> list[dict[str, str]]:
    """Chat messages as ``[{"role", "content": str}]`` from what tracers record: OpenAI messages
    (string content or text parts), OpenInference's ``[{"message": {...}}]``, a ``{"messages": [...]}``
    wrapper. Raises ValidationFailed when there are none."""
    if isinstance(raw, Mapping) and isinstance(raw.get("messages"), list):
        raw = raw["messages"]
    if isinstance(raw, str) and raw.strip():
        return [{"role": "user", "content": raw}]
    out: list[dict[str, str]] = []
    if isinstance(raw, list):
        for m in raw:
            if isinstance(m, Mapping) and isinstance(m.get("message"), Mapping):
                m = m["message"]
            if not isinstance(m, Mapping):
                continue
            text = _content_text(m.get("content"))
            role = m.get("role")
            if text is None or not isinstance(role, str):
                continue
            out.append({"role": role, "content": text})
    if not out:
        raise ValidationFailed("the generation span's input holds no chat messages with text content "
                               "(expected [{\"role\": ..., \"content\": ...}])", details=[{"field": "messages"}])
    return out


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (stripped of surrounding whitespace)."""
    out = []
    for m in _SENTENCE.finditer(text):
        a, b = m.start(), m.end()
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out or ([(0, len(text))] if text else [])


def locate(messages: Sequence[Mapping[str, str]], sources: Sequence[Source], *,
           level: Level = "chunk") -> list[Unit]:
    """Find each source's text in the messages (first occurrence not already claimed, searching
    the messages in order) and cut it into units. Raises ValidationFailed naming the sources that
    do not appear verbatim: attribution works by deleting their text from the prompt."""
    if level not in LEVELS:
        raise ValidationFailed(f"level must be one of {', '.join(LEVELS)}, got {level!r}",
                               details=[{"field": "level"}])
    claimed: list[list[tuple[int, int]]] = [[] for _ in messages]
    units: list[Unit] = []
    missing = []
    for si, s in enumerate(sources):
        text = s.text.strip()
        where = None
        if text:
            for mi, m in enumerate(messages):
                content = m["content"]
                pos = content.find(text)
                while pos >= 0 and any(a < pos + len(text) and pos < b for a, b in claimed[mi]):
                    pos = content.find(text, pos + 1)
                if pos >= 0:
                    where = (mi, pos)
                    claimed[mi].append((pos, pos + len(text)))
                    break
        if where is None:
            missing.append(s.id)
            continue
        mi, pos = where
        spans = split_sentences(text) if level == "sentence" else [(0, len(text))]
        units += [Unit(si, mi, pos + a, pos + b, text[a:b]) for a, b in spans]
    if missing:
        raise ValidationFailed(
            f"{len(missing)} of {len(sources)} retrieved chunks were not found verbatim in the prompt messages "
            f"({', '.join(map(str, missing[:5]))}{'...' if len(missing) > 5 else ''}): attribution removes each "
            "chunk's text from the prompt, so the generation span must record the prompt the chunks were pasted "
            "into unchanged", details=[{"field": "sources", "message": "not in the prompt", "ids": missing[:20]}])
    if not units:
        raise ValidationFailed("there are no retrieved chunks with text to attribute", details=[{"field": "sources"}])
    if len(units) > MAX_UNITS:
        raise ValidationFailed(f"{len(units)} units to ablate is more than {MAX_UNITS}: attribute at chunk level "
                               "or retrieve fewer chunks", details=[{"field": "level"}])
    return units


def ablate(messages: Sequence[Mapping[str, str]], units: Sequence[Unit], keep: Sequence[bool]) -> list[dict[str, str]]:
    """The messages with the text of every unit whose ``keep`` is False deleted."""
    cut: dict[int, list[tuple[int, int]]] = {}
    for u, k in zip(units, keep, strict=True):
        if not k:
            cut.setdefault(u.message, []).append((u.start, u.end))
    out = []
    for mi, m in enumerate(messages):
        spans = sorted(cut.get(mi, ()))
        if not spans:
            out.append(dict(m))
            continue
        content, parts, at = m["content"], [], 0
        for a, b in spans:
            parts.append(content[at:a])
            at = max(at, b)
        parts.append(content[at:])
        out.append({**m, "content": "".join(parts)})
    return out


def response_value(logprobs: Sequence[float]) -> float:
    """ContextCite's ``logit_prob``: log p - log(1 - p) of the whole response, p = exp(sum logprobs)."""
    lp = min(float(sum(logprobs)), -1e-12)
    log1m = math.log(-math.expm1(lp)) if lp > -0.1 else math.log1p(-math.exp(lp))
    return lp - log1m


# --- what tracers record --------------------------------------------------------------------------

_TEXT_KEYS = ("text", "content", "page_content", "chunk", "passage")
_ID_KEYS = ("id", "chunk_id", "document_id", "doc_id")
_LIST_KEYS = ("documents", "chunks", "hits", "results", "data", "nodes", "source_nodes")


def sources_from_retrieval(output: Any) -> list[Source]:
    """The chunks a retrieval span returned, from the shapes tracers record: Podium's own
    (``[{"id", "document_id", "title", "text", "score"}]``), OpenInference/LangChain/LlamaIndex
    (``[{"document": {"id", "content", "metadata"}}]``), LangChain documents (``page_content``),
    plain strings, or any of these under ``documents``/``chunks``/``hits``/``results``/``data``."""
    if isinstance(output, Mapping):
        for k in _LIST_KEYS:
            if isinstance(output.get(k), list):
                output = output[k]
                break
    if isinstance(output, str):
        output = [output]
    out: list[Source] = []
    if not isinstance(output, list):
        return out
    for n, item in enumerate(output, start=1):
        if isinstance(item, Mapping) and isinstance(item.get("document"), Mapping):
            item = item["document"]
        if isinstance(item, Mapping) and isinstance(item.get("node"), Mapping):
            item = item["node"]
        text: str | None = None
        sid: Any = None
        title: Any = None
        if isinstance(item, str):
            text = item
        elif isinstance(item, Mapping):
            text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str) and item[k].strip()), None)
            meta: Mapping[str, Any] = item["metadata"] if isinstance(item.get("metadata"), Mapping) else {}
            sid = next((item[k] for k in _ID_KEYS if item.get(k) not in (None, "")), None)
            if sid is None:
                sid = next((meta[k] for k in (*_ID_KEYS, "source") if meta.get(k) not in (None, "")), None)
            title = item.get("title") or meta.get("title")
        if text and text.strip():
            out.append(Source(id=str(sid) if sid is not None else f"#{n}", text=text,
                              title=str(title) if title else None))
    return out


def response_text(output: Any) -> str | None:
    """The assistant's text from a generation span's output: a string, a message
    (``{"role", "content"}``), OpenInference's ``[{"message": ...}]``, or an OpenAI response."""
    if isinstance(output, str):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("choices"), list) and output["choices"]:
            ch = output["choices"][0]
            return response_text(ch.get("message") if isinstance(ch, Mapping) and "message" in ch else ch)
        if isinstance(output.get("message"), Mapping):
            return response_text(output["message"])
        for k in ("content", "text", "output", "answer"):
            if k in output:
                got = _content_text(output[k]) if k == "content" else output[k]
                if isinstance(got, str):
                    return got
        return None
    if isinstance(output, list):
        texts = [t for t in (response_text(m) for m in output) if t]
        return texts[-1] if texts else None
    return None


# --- the two methods --------------------------------------------------------------------------------


class _Runner:
    """Scores ablated contexts within the budget; counts passes and seconds."""

    def __init__(self, model: LogProbModel, messages: list[dict[str, str]], response: str, units: list[Unit],
                 max_passes: int | None, max_seconds: float | None, cancel: threading.Event | None) -> None:
        if not isinstance(response, str) or not response.strip():
            raise ValidationFailed("the response to attribute is empty", details=[{"field": "response"}])
        self.model, self.messages, self.response, self.units = model, messages, response, units
        self.max_passes, self.max_seconds, self.cancel = max_passes, max_seconds, cancel
        self.passes, self.tokens = 0, 0
        self.t0 = time.perf_counter()

    def left(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            raise ServiceUnavailable("attribution was cancelled")
        if self.max_passes is not None and self.passes >= self.max_passes:
            return False
        return self.max_seconds is None or time.perf_counter() - self.t0 < self.max_seconds

    def value(self, keep: Sequence[bool]) -> float:
        ts = self.model.response_logprobs(ablate(self.messages, self.units, keep), self.response, cancel=self.cancel)
        self.passes += 1
        self.tokens = len(ts.logprobs)
        return response_value(ts.logprobs)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def _check_budget(max_passes: int | None, max_seconds: float | None, least: int) -> None:
    if max_passes is not None and max_passes < least:
        raise BadRequest(f"max_passes={max_passes} is below the {least} passes this needs at least",
                         details=[{"field": "max_passes"}])
    if max_seconds is not None and max_seconds <= 0:
        raise BadRequest("max_seconds must be positive", details=[{"field": "max_seconds"}])


def leave_one_out(model: LogProbModel, messages: Any, response: str, sources: Sequence[Source], *,
                  level: Level = "chunk", max_passes: int | None = None, max_seconds: float | None = None,
                  cancel: threading.Event | None = None) -> Attribution:
    """Weight of a unit = value(full context) - value(context without that unit)."""
    msgs = normalise_messages(messages)
    units = locate(msgs, sources, level=level)
    _check_budget(max_passes, max_seconds, 2)
    run = _Runner(model, msgs, response, units, max_passes, max_seconds, cancel)
    full = run.value([True] * len(units))
    weights: list[float | None] = [None] * len(units)
    # last unit first: each pass shares the KV prefix up to its unit with the pass before
    for i in reversed(range(len(units))):
        if not run.left():
            break
        keep = [j != i for j in range(len(units))]
        weights[i] = full - run.value(keep)
    return Attribution("leave-one-out", level, list(sources), units, weights, full, run.tokens, run.passes,
                       run.seconds, truncated=any(w is None for w in weights),
                       params={"max_passes": max_passes, "max_seconds": max_seconds})


def _lasso() -> Callable[..., Any]:
    try:
        from sklearn.linear_model import Lasso
    except ImportError as e:  # pragma: no cover - the dev install has it
        raise ConfigurationError("context-cite needs scikit-learn (its Lasso surrogate): "
                                 "pip install 'podium[explain]'; leave-one-out works without it") from e
    return Lasso


def context_cite(model: LogProbModel, messages: Any, response: str, sources: Sequence[Source], *,
                 level: Level = "sentence", num_ablations: int = 64, keep_prob: float = 0.5, seed: int = 0,
                 alpha: float = 0.01, max_passes: int | None = None, max_seconds: float | None = None,
                 cancel: threading.Event | None = None) -> Attribution:
    """ContextCite: a Lasso surrogate from random keep-masks to the response's value."""
    import numpy as np

    lasso = _lasso()
    if not MIN_ABLATIONS <= num_ablations <= 1024:
        raise BadRequest(f"num_ablations must be between {MIN_ABLATIONS} and 1024 (ContextCite uses 32 to 64)",
                         details=[{"field": "ablations"}])
    if not 0.0 < keep_prob < 1.0:
        raise BadRequest("keep_prob must be strictly between 0 and 1", details=[{"field": "keep_prob"}])
    msgs = normalise_messages(messages)
    units = locate(msgs, sources, level=level)
    _check_budget(max_passes, max_seconds, 1 + MIN_ABLATIONS)
    run = _Runner(model, msgs, response, units, max_passes, max_seconds, cancel)
    full = run.value([True] * len(units))
    rng = np.random.default_rng(seed)
    drawn = [rng.random(len(units)) < keep_prob for _ in range(num_ablations)]
    # scored in lexicographic order (kept units first) within blocks of 16: neighbours share a longer KV
    # prefix, and a budget cut still leaves an unbiased sample of whole blocks
    order = [k for b in range(0, num_ablations, 16)
             for k in sorted(range(b, min(b + 16, num_ablations)), key=lambda k: [not x for x in drawn[k]])]
    masks, ys = [], []
    for k in order:
        if not run.left():
            break
        masks.append(drawn[k])
        ys.append(run.value(drawn[k].tolist()))
    if len(masks) < MIN_ABLATIONS:
        raise ServiceUnavailable(f"the budget allowed {len(masks)} ablations, fewer than the {MIN_ABLATIONS} a "
                                 "surrogate needs: raise max_seconds/max_passes or use leave-one-out")
    X = np.asarray(masks, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    reg = lasso(alpha=alpha, max_iter=10_000).fit(X, y)
    pred = reg.predict(X)
    fit = {"r2": _r2(y, pred), "heldout_corr": _heldout_corr(lasso, alpha, X, y), "ablations": len(masks),
           "intercept": float(reg.intercept_), "nonzero": int(np.count_nonzero(reg.coef_))}
    weights: list[float | None] = [float(w) for w in reg.coef_]
    return Attribution("context-cite", level, list(sources), units, weights, full, run.tokens, run.passes,
                       run.seconds, truncated=len(masks) < num_ablations, fit=fit,
                       params={"num_ablations": num_ablations, "keep_prob": keep_prob, "seed": seed, "alpha": alpha,
                               "max_passes": max_passes, "max_seconds": max_seconds})


def _r2(y: Any, pred: Any) -> float | None:
    ss = float(((y - y.mean()) ** 2).sum())
    return None if ss == 0.0 else round(1.0 - float(((y - pred) ** 2).sum()) / ss, 4)


def _heldout_corr(lasso: Callable[..., Any], alpha: float, X: Any, y: Any, folds: int = 4) -> float | None:
    """Pearson correlation of out-of-fold predictions with the measured values (None when flat)."""
    import numpy as np

    n = len(y)
    pred = np.empty(n)
    idx = np.arange(n)
    for f in range(folds):
        test = idx % folds == f
        if test.all() or not test.any():
            return None
        pred[test] = lasso(alpha=alpha, max_iter=10_000).fit(X[~test], y[~test]).predict(X[test])
    if float(np.std(pred)) == 0.0 or float(np.std(y)) == 0.0:
        return None
    return round(float(np.corrcoef(pred, y)[0, 1]), 4)

"""Realistic LLM-app traces, shared by the ingestion benchmark (wire JSON) and the data
generator (store rows): a root chain/agent span, then retrievals, embeddings, generations
(model, usage, messages), tool calls and guardrails, some nested under agent steps, with
small JSON inputs and outputs and a few errors.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ROUTES = [
    "support-bot", "rag-answer", "summarize-document", "classify-ticket", "extract-invoice",
    "translate", "sql-agent", "code-review", "search-assistant", "email-draft", "meeting-notes",
    "product-qa", "onboarding-agent", "contract-review", "chat", "research-agent", "triage",
    "refund-agent", "kb-ingest", "eval-run",
]
# (model, provider, input $/1M, output $/1M, weight)
MODELS: list[tuple[str, str, float, float, float]] = [
    ("gpt-5.4-mini", "openai", 0.75, 4.5, 30),
    ("gpt-5.4", "openai", 2.5, 15.0, 12),
    ("claude-sonnet-4-6", "anthropic", 3.0, 15.0, 15),
    ("claude-haiku-4-5", "anthropic", 1.0, 5.0, 12),
    ("gemini-2.5-flash", "google", 0.3, 2.5, 12),
    ("mistral-large", "mistral", 2.0, 6.0, 6),
    ("deepseek-chat", "deepseek", 0.27, 1.1, 6),
    ("llama-3.3-70b-versatile", "groq", 0.59, 0.79, 5),
    ("gpt-5.4-nano", "openai", 0.2, 1.25, 1.5),
    ("magistral-small", "mistral", 0.5, 1.5, 0.3),  # rare: in ~0.8% of traces
]
EMBED_MODEL = ("text-embedding-3-small", "openai", 0.02, 0.0)
TAGS = [
    "prod", "staging", "beta", "experiment-a", "experiment-b", "mobile", "web", "api", "slack",
    "enterprise", "free-tier", "pro", "eu", "us", "apac", "cached", "streaming", "batch",
    "long-context", "vip",
]
RARE_TAG = "needs-review"  # on ~0.1% of traces
TOOLS = ["web_search", "sql_query", "calculator", "get_weather", "lookup_order", "send_email", "read_file"]
_TEXT = (
    "the a of to and in is for on that with as it be by this are from or at an have not you which "
    "customer order refund invoice policy account payment shipping delivery product price plan "
    "upgrade cancel support question answer document summary report contract clause deadline "
    "meeting notes action item search result query database table column error timeout retry "
    "model prompt token context window latency cost budget user session release feature bug fix"
)
WORDS = _TEXT.split()


def sentence(rng: random.Random, lo: int = 6, hi: int = 24) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi))).capitalize() + "."


def pick_model(rng: random.Random) -> tuple[str, str, float, float, float]:
    return rng.choices(MODELS, weights=[m[4] for m in MODELS])[0]


@dataclass
class SpanSpec:
    id: str
    parent_id: str | None
    name: str
    kind: str
    start_ms: float  # offset from the trace start
    dur_ms: float
    status: str = "ok"
    status_message: str | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    model: str | None = None
    provider: str | None = None
    model_parameters: dict[str, Any] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    price_in: float = 0.0  # USD per 1M tokens
    price_out: float = 0.0
    ttft_ms: float | None = None


@dataclass
class TraceSpec:
    name: str
    spans: list[SpanSpec] = field(default_factory=list)
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    environment: str = "production"
    release: str = "v1.8.2"
    metadata: dict[str, Any] | None = None

    @property
    def dur_ms(self) -> float:
        return max(s.start_ms + s.dur_ms for s in self.spans)

    @property
    def has_error(self) -> bool:
        return any(s.status == "error" for s in self.spans)


def span_id(i: int, salt: int) -> str:
    return f"{(salt * 1_000_003 + i) & 0xFFFFFFFFFFFF:012x}{i:04x}"


def make_trace(
    rng: random.Random,
    n_spans: int,
    *,
    salt: int = 0,
    error_rate: float = 0.03,
    max_ms: float = 45_000.0,
    route: str | None = None,
) -> TraceSpec:
    """One trace of exactly ``n_spans`` spans (>= 1); total duration <= ``max_ms``."""
    route = route or rng.choice(ROUTES)
    ids = iter(range(1_000_000))
    root_id = span_id(next(ids), salt)
    tr = TraceSpec(name=route)
    root = SpanSpec(
        root_id, None, route, "agent" if "agent" in route else "chain", 0.0, 0.0,
        input={"question": sentence(rng), "locale": rng.choice(["en", "de", "fr", "ja"])},
        output=sentence(rng, 10, 40),
        metadata={"route": route, "tenant": f"t{rng.randint(1, 40)}"},
    )
    tr.spans.append(root)
    cursor = rng.uniform(1, 20)
    budget = max_ms * 0.95

    def add(parent: str, kind: str, dur: float, **kw: Any) -> SpanSpec:
        nonlocal cursor
        dur = min(dur, max(budget - cursor, 1.0))
        s = SpanSpec(span_id(next(ids), salt), parent, kw.pop("name", kind), kind, cursor, dur, **kw)
        tr.spans.append(s)
        return s

    def generation(parent: str) -> None:
        nonlocal cursor
        m = pick_model(rng)
        dur = min(rng.lognormvariate(6.6, 0.6), 12_000.0)
        it, ot = rng.randint(150, 6000), rng.randint(10, 900)
        add(
            parent, "generation", dur, name=f"{m[1]}.chat",
            model=m[0], provider=m[1], model_parameters={"temperature": rng.choice([0, 0.2, 0.7]), "max_tokens": 1024},
            input=[{"role": "system", "content": sentence(rng, 6, 14)}, {"role": "user", "content": sentence(rng)}],
            output={"role": "assistant", "content": sentence(rng, 8, 40)},
            input_tokens=it, output_tokens=ot, price_in=m[2], price_out=m[3], ttft_ms=min(dur, rng.uniform(120, 600)),
        )
        cursor += dur + rng.uniform(0.5, 5)

    def retrieval(parent: str) -> None:
        nonlocal cursor
        q = sentence(rng, 4, 10)
        if len(tr.spans) < n_spans - 1:
            e = EMBED_MODEL
            add(parent, "embedding", rng.uniform(15, 80), name="embed-query", model=e[0], provider=e[1],
                input=q, input_tokens=rng.randint(5, 40), output_tokens=0, price_in=e[2])
            cursor += tr.spans[-1].dur_ms
        dur = rng.uniform(20, 250)
        add(parent, "retrieval", dur, name="vector-search", input={"query": q, "top_k": 3},
            output=[{"id": f"doc-{rng.randint(1, 99999)}", "score": round(rng.random(), 3)} for _ in range(3)])
        cursor += dur

    def tool(parent: str) -> None:
        nonlocal cursor
        name = rng.choice(TOOLS)
        dur = rng.lognormvariate(4.5, 1.0)
        add(parent, "tool", dur, name=name, input={"args": {"q": sentence(rng, 2, 6)}},
            output={"ok": True, "rows": rng.randint(0, 50)})
        cursor += dur

    def guardrail(parent: str) -> None:
        nonlocal cursor
        dur = rng.uniform(2, 40)
        add(parent, "guardrail", dur, name="pii-check", input={"text_len": rng.randint(10, 4000)},
            output={"passed": True})
        cursor += dur

    while len(tr.spans) < n_spans:
        r = rng.random()
        if r < 0.2 and n_spans - len(tr.spans) >= 3:
            step = add(root_id, "agent", 0.0, name=f"step-{len(tr.spans)}")
            start = cursor
            generation(step.id)
            if len(tr.spans) < n_spans:
                tool(step.id)
            step.dur_ms = cursor - start
        elif r < 0.45:
            generation(root_id)
        elif r < 0.65:
            retrieval(root_id)
        elif r < 0.85:
            tool(root_id)
        else:
            guardrail(root_id)
    del tr.spans[n_spans:]
    root.dur_ms = min(max(s.start_ms + s.dur_ms for s in tr.spans) + rng.uniform(1, 10), max_ms)
    if rng.random() < error_rate:
        victims = [s for s in tr.spans if s.kind in ("tool", "generation")] or tr.spans
        v = rng.choice(victims)
        v.status, v.status_message = "error", rng.choice(
            ["TimeoutError: upstream did not answer in 30s", "RateLimitError: 429 Too Many Requests",
             "ValueError: tool returned malformed JSON"]
        )
        root.status, root.status_message = "error", v.status_message
    return tr

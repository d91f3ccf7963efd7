"""Fit a conversation into a model's context window, with its token count and cost per turn.

::

    from podium.sdk.conversation import ContextWindow

    window = ContextWindow("gpt-4o-mini", max_output_tokens=1024, strategy="summarize")
    fitted = window.fit(messages)          # a Fit: the messages to send and what was done
    client.chat.completions.create(model="gpt-4o-mini", messages=fitted.messages, max_tokens=1024)

The **budget** is the model's context window (``context_window=``, or the table in
``podium/core/context_windows.json``) minus ``max_output_tokens`` (the room the answer needs)
minus ``reserve`` (a safety margin: counts are cl100k_base estimates for other tokenizers).
Tokens are counted offline with :func:`podium.core.tokens.count_tokens` (chat counting: 3 per
message + content + 3 priming the reply).

**Strategies** (leading ``system`` messages are always kept):

* ``truncate_oldest``: drop the oldest other messages until the rest fits;
* ``keep_last``: keep the system messages and the last ``keep_last`` messages (then, if they
  still do not fit, drop the oldest of those);
* ``summarize``: when the conversation does not fit, the messages before the last ``keep_last``
  are summarised by a model through the gateway (``summary_model``, default the same model) and
  replaced by one system message with the summary; if that is still too long, the oldest kept
  messages go too.

A tool result is never kept without the assistant message that called it. :meth:`ContextWindow.fit`
records a ``chain`` span ``context.fit`` (tokens before and after, budget, strategy, dropped and
summarised turns; the summary call as a ``generation`` child) when tracing is on, and returns
per-turn tokens and the estimated input cost (``podium/core/prices.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.core.pricing import compute_cost
from podium.core.tokens import count_tokens
from podium.core.windows import context_window
from podium.errors import BadRequest, ConfigurationError
from podium.sdk.tracing import span

__all__ = ["STRATEGIES", "SUMMARY_PROMPT", "ContextTooLong", "ContextWindow", "Fit", "Turn", "fit_messages"]

STRATEGIES = ("truncate_oldest", "keep_last", "summarize")
SUMMARY_PROMPT = (
    "Summarise the conversation below for the assistant that continues it. Keep every fact, name, number, "
    "decision and open question the user gave or asked for; drop greetings and repetition. Write at most "
    "{max_words} words, in the third person, as plain prose."
)
SUMMARY_PREFIX = "Summary of the earlier conversation: "
Message = Mapping[str, Any]
Summarizer = Callable[[list[dict[str, Any]], str, int], str]


class ContextTooLong(BadRequest):
    """Even the messages that must stay (system + the last one) exceed the budget."""

    code = "context_too_long"


@dataclass(frozen=True)
class Turn:
    """One message of the fitted conversation: its tokens and their estimated input cost (USD)."""

    index: int
    role: str
    tokens: int
    cost: float | None


@dataclass
class Fit:
    """What :meth:`ContextWindow.fit` did."""

    messages: list[dict[str, Any]]
    strategy: str
    model: str
    context_window: int
    budget: int
    tokens_before: int
    tokens_after: int
    dropped: int  # messages removed (not counting the summarised ones)
    summarized: int  # messages replaced by the summary
    summary: str | None
    turns: list[Turn] = field(default_factory=list)
    cost: float | None = None  # estimated input cost of the fitted messages (USD)
    summary_usage: dict[str, int] | None = None

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.summarized)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "model": self.model, "context_window": self.context_window,
                "budget": self.budget, "tokens_before": self.tokens_before, "tokens_after": self.tokens_after,
                "dropped": self.dropped, "summarized": self.summarized, "summary": self.summary,
                "cost": self.cost, "turns": [t.__dict__ for t in self.turns]}


def _leading_system(messages: Sequence[Message]) -> int:
    n = 0
    while n < len(messages) and messages[n].get("role") in ("system", "developer"):
        n += 1
    return n


def _orphans(rest: list[dict[str, Any]]) -> int:
    """How many tool results lead ``rest`` without the call that asked for them."""
    n = 0
    while n < len(rest) and rest[n].get("role") == "tool":
        n += 1
    return n


class ContextWindow:
    """Fits conversations for one model (see the module docstring)."""

    def __init__(
        self,
        model: str,
        *,
        context_window: int | None = None,
        max_output_tokens: int = 512,
        reserve: int = 0,
        strategy: str = "truncate_oldest",
        keep_last: int = 6,
        summary_model: str | None = None,
        summary_max_tokens: int = 256,
        summarizer: Summarizer | Any | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigurationError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
        window = context_window or _window(model)
        if window is None:
            raise ConfigurationError(f"no known context window for model {model!r}: pass context_window=TOKENS "
                                     "(podium/core/context_windows.json lists the known ones)")
        for name, v in (("max_output_tokens", max_output_tokens), ("reserve", reserve), ("keep_last", keep_last),
                        ("summary_max_tokens", summary_max_tokens)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigurationError(f"{name} must be a whole number >= 0, got {v!r}")
        if window - max_output_tokens - reserve <= 0:
            raise ConfigurationError(f"max_output_tokens ({max_output_tokens}) + reserve ({reserve}) leave no room in "
                                     f"the {window}-token window of {model!r}: lower them")
        self.model = model
        self.context_window = window
        self.max_output_tokens = max_output_tokens
        self.reserve = reserve
        self.strategy = strategy
        self.keep_last = keep_last
        self.summary_model = summary_model or model
        self.summary_max_tokens = summary_max_tokens
        self.summarizer = summarizer
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout

    @property
    def budget(self) -> int:
        """Tokens the prompt may use: the window minus the output room and the reserve."""
        return self.context_window - self.max_output_tokens - self.reserve

    def count(self, messages: Sequence[Message]) -> int:
        """Tokens of a chat request with ``messages`` (offline estimate)."""
        return count_tokens(list(messages), model=self.model)

    def fit(self, messages: Sequence[Message]) -> Fit:
        """The messages to send, fitted into the budget, and a report of what was done."""
        msgs = [dict(m) for m in messages]
        with span("context.fit", kind="chain", input={"model": self.model, "strategy": self.strategy,
                                                      "messages": len(msgs)}) as s:
            result = self._fit(msgs)
            s.update(output={"messages": len(result.messages), "summary": result.summary},
                     metadata={"context.tokens_before": result.tokens_before,
                               "context.tokens_after": result.tokens_after, "context.budget": result.budget,
                               "context.window": result.context_window, "context.strategy": result.strategy,
                               "context.dropped_turns": result.dropped,
                               "context.summarized_turns": result.summarized,
                               "context.estimated_cost": result.cost})
        return result

    # --- the strategies ------------------------------------------------------------------------------------

    def _fit(self, msgs: list[dict[str, Any]]) -> Fit:
        before = self.count(msgs)
        head_n = _leading_system(msgs)
        head, rest = msgs[:head_n], msgs[head_n:]
        dropped = summarized = 0
        summary: str | None = None
        usage: dict[str, int] | None = None
        if self.strategy == "keep_last" and len(rest) > self.keep_last:
            dropped = len(rest) - self.keep_last
            rest = rest[dropped:]
        elif self.strategy == "summarize" and before > self.budget and len(rest) > self.keep_last:
            cut = len(rest) - self.keep_last
            older, rest = rest[:cut], rest[cut:]
            summary, usage = self._summarize(older)
            summarized = len(older)
            head = [*head, {"role": "system", "content": SUMMARY_PREFIX + summary}]
        o = _orphans(rest)
        if o:
            rest, dropped = rest[o:], dropped + o
        while rest and self.count(head + rest) > self.budget:
            n = 1 + _orphans(rest[1:])
            if len(rest) <= n:
                break
            rest, dropped = rest[n:], dropped + n
        fitted = head + rest
        after = self.count(fitted)
        if after > self.budget:
            raise ContextTooLong(
                f"the system messages and the last message alone take {after} tokens, over the budget of "
                f"{self.budget} ({self.context_window}-token window of {self.model!r} - {self.max_output_tokens} "
                f"output - {self.reserve} reserve): shorten them or lower max_output_tokens")
        turns = [Turn(i, str(m.get("role", "")), self.count([m]) - 3, _cost(self.model, self.count([m]) - 3))
                 for i, m in enumerate(fitted)]
        return Fit(messages=fitted, strategy=self.strategy, model=self.model, context_window=self.context_window,
                   budget=self.budget, tokens_before=before, tokens_after=after, dropped=dropped,
                   summarized=summarized, summary=summary, turns=turns, cost=_cost(self.model, after),
                   summary_usage=usage)

    def _summarize(self, older: list[dict[str, Any]]) -> tuple[str, dict[str, int] | None]:
        max_words = max(20, int(self.summary_max_tokens * 0.6))
        transcript = "\n".join(f"{m.get('role', 'user')}: {_text(m.get('content'))}" for m in older
                               if _text(m.get("content")))
        prompt = [{"role": "system", "content": SUMMARY_PROMPT.format(max_words=max_words)},
                  {"role": "user", "content": transcript}]
        window = _window(self.summary_model) or self.context_window
        room = window - self.summary_max_tokens - self.reserve
        lines = transcript.split("\n")
        while len(lines) > 1 and count_tokens(prompt, model=self.summary_model) > room:
            lines = lines[1:]  # the summariser's own window: its oldest lines go first
            prompt[1]["content"] = "\n".join(lines)
        with span("context.summarize", kind="generation", input=prompt) as s:
            text, usage = self._call(prompt)
            s.update(output=text, model=self.summary_model, usage=usage,
                     model_parameters={"max_tokens": self.summary_max_tokens, "temperature": 0})
        return text.strip(), usage

    def _call(self, prompt: list[dict[str, Any]]) -> tuple[str, dict[str, int] | None]:
        fn = self.summarizer
        if callable(fn) and not hasattr(fn, "chat"):
            return str(fn(prompt, self.summary_model, self.summary_max_tokens)), None
        if fn is not None:  # an OpenAI-compatible client (openai.OpenAI, or Podium's wrapper)
            r = fn.chat.completions.create(model=self.summary_model, messages=prompt,
                                           max_tokens=self.summary_max_tokens, temperature=0)
            u = getattr(r, "usage", None)
            usage = {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens} if u else None
            return str(r.choices[0].message.content or ""), usage
        return self._gateway(prompt)

    def _gateway(self, prompt: list[dict[str, Any]]) -> tuple[str, dict[str, int] | None]:
        import httpx

        from podium.config import Settings

        s = Settings()
        base = (self.base_url or s.base_url).rstrip("/")
        key = self.api_key or s.secret_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            r = httpx.post(f"{base}/v1/chat/completions", headers=headers, timeout=self.timeout,
                           json={"model": self.summary_model, "messages": prompt,
                                 "max_tokens": self.summary_max_tokens, "temperature": 0})
            r.raise_for_status()
            body = r.json()
            text = body["choices"][0]["message"]["content"] or ""
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as e:
            raise ConfigurationError(f"the summary call to {base}/v1/chat/completions (model "
                                     f"{self.summary_model!r}) failed: {e}; check PODIUM_BASE_URL and "
                                     "PODIUM_SECRET_KEY, or pass summarizer=") from None
        u = body.get("usage") or {}
        usage = ({"input_tokens": int(u.get("prompt_tokens", 0)), "output_tokens": int(u.get("completion_tokens", 0))}
                 if u else None)
        return str(text), usage


def fit_messages(messages: Sequence[Message], model: str, **options: Any) -> Fit:
    """``ContextWindow(model, **options).fit(messages)`` in one call."""
    return ContextWindow(model, **options).fit(messages)


def _window(model: str) -> int | None:
    return context_window(model)


def _cost(model: str, tokens: int) -> float | None:
    c = compute_cost(model, {"input_tokens": tokens, "output_tokens": 0})
    return None if c is None else c["input"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)

"""What an experiment runs on each dataset item: a Python callable, a prompt through the
gateway, or any HTTP endpoint.

A task has a ``name``, ``describe()`` (stored with the experiment) and
``run(item, ctx) -> TaskOutput``. ``ctx`` carries the item's trace and span ids: the prompt task
passes them to the gateway (``podium.trace_id``/``parent_id``) and the HTTP task sends a W3C
``traceparent`` header, so the model call lands inside the item's trace.

Errors: :class:`RateLimited` (HTTP 429; the runner backs off and retries), :class:`TransientError`
(5xx, network, upstream timeouts; retried) and anything else (recorded as the item's error at
once). A Python callable may raise its own exceptions: ones with a ``status_code`` (or a
``response.status_code``) of 429 or 5xx count as rate limits / transient errors, as do httpx's
and openai's network errors.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from podium.core.datasets import DatasetItem
from podium.core.pricing import compute_cost
from podium.core.prompts import Prompt
from podium.errors import ConfigurationError, ValidationFailed

__all__ = [
    "HttpTask",
    "PromptTask",
    "PythonTask",
    "RateLimited",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskOutput",
    "TransientError",
    "as_task",
    "classify_error",
    "item_variables",
]


class TaskError(Exception):
    """A task failed for good on this item (recorded as its error)."""

    code = "task_error"


class TransientError(TaskError):
    """A failure worth retrying: 5xx, network errors, upstream timeouts."""

    code = "upstream_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """HTTP 429: the runner halves its concurrency, waits and retries."""

    code = "rate_limited"


def _status_of(e: BaseException) -> int | None:
    s = getattr(e, "status_code", None)
    if s is None:
        resp = getattr(e, "response", None)
        s = getattr(resp, "status_code", None)
    return s if isinstance(s, int) else None


def _retry_after_of(e: BaseException) -> float | None:
    ra = getattr(e, "retry_after", None)
    if isinstance(ra, int | float):
        return float(ra)
    resp = getattr(e, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is not None:
        try:
            v = headers.get("retry-after")
            return float(v) if v is not None else None
        except (TypeError, ValueError):
            return None
    return None


_TRANSIENT_NAMES = {"APIConnectionError", "APITimeoutError", "InternalServerError", "ServiceUnavailableError"}


def classify_error(e: BaseException) -> tuple[str, float | None]:
    """``("rate_limited" | "transient" | "permanent", retry_after)`` for an exception a task raised."""
    if isinstance(e, RateLimited):
        return "rate_limited", e.retry_after
    if isinstance(e, TransientError):
        return "transient", e.retry_after
    if isinstance(e, TaskError):
        return "permanent", None
    status = _status_of(e)
    if status == 429:
        return "rate_limited", _retry_after_of(e)
    if status is not None and status >= 500:
        return "transient", _retry_after_of(e)
    if isinstance(e, httpx.TransportError | ConnectionError) or type(e).__name__ in _TRANSIENT_NAMES:
        return "transient", None
    return "permanent", None


@dataclass
class TaskContext:
    """Where the task runs: the item's trace (None when tracing is off) and its repetition."""

    trace_id: str | None = None
    span_id: str | None = None
    repetition: int = 0
    experiment_id: str | None = None
    timeout: float | None = None


@dataclass
class TaskOutput:
    """A task's result with what it knows about the call (all optional)."""

    output: Any
    usage: dict[str, int] | None = None
    cost: float | None = None
    model: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    name: str

    def describe(self) -> dict[str, Any]: ...

    def run(self, item: DatasetItem, ctx: TaskContext) -> TaskOutput: ...


def item_variables(item: DatasetItem) -> dict[str, Any]:
    """Template variables of an item: its input's keys when the input is a mapping (plus
    ``input``, ``expected``, ``context``, ``metadata`` themselves), else ``input`` alone."""
    out: dict[str, Any] = {"input": item.input, "expected": item.expected, "context": item.context,
                           "metadata": dict(item.metadata)}
    if isinstance(item.input, Mapping):
        out.update({str(k): v for k, v in item.input.items()})
    return out


# --- Python callables -------------------------------------------------------------------------

_ITEM_PARAMS = ("input", "expected", "context", "metadata", "item")


class PythonTask:
    """Calls ``fn`` per item. Parameters named ``input``, ``expected``, ``context``,
    ``metadata`` or ``item`` (the whole :class:`DatasetItem`) get those; otherwise the input is
    passed as the only positional argument. ``async def`` functions are run to completion.
    Returning a :class:`TaskOutput` adds usage, cost or model to the record."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigurationError(f"a task must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        if self.name == "<lambda>":
            self.name = "lambda"
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        self._named = [p for p in params if p in _ITEM_PARAMS]

    def describe(self) -> dict[str, Any]:
        return {"type": "python", "name": self.name, "module": getattr(self.fn, "__module__", None)}

    def run(self, item: DatasetItem, ctx: TaskContext) -> TaskOutput:
        if self._named:
            values = {"input": item.input, "expected": item.expected, "context": item.context,
                      "metadata": dict(item.metadata), "item": item}
            result = self.fn(**{k: values[k] for k in self._named})
        else:
            result = self.fn(item.input)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result if isinstance(result, TaskOutput) else TaskOutput(result)


async def _await(aw: Any) -> Any:
    return await aw


# --- HTTP plumbing shared by the gateway and HTTP tasks ----------------------------------------------

_CLIENTS: dict[float, httpx.Client] = {}
_CLIENTS_LOCK = threading.Lock()


def _http(timeout: float | None) -> httpx.Client:
    key = float(timeout or 120.0)
    with _CLIENTS_LOCK:
        c = _CLIENTS.get(key)
        if c is None:
            c = _CLIENTS[key] = httpx.Client(timeout=key, limits=httpx.Limits(max_connections=256,
                                                                             max_keepalive_connections=64))
        return c


def _raise_for(r: httpx.Response, what: str) -> None:
    if r.status_code < 400:
        return
    try:
        body = r.json()
        err = body.get("error") if isinstance(body, dict) else None
        msg = err.get("message") if isinstance(err, dict) else (err or r.text)
    except ValueError:
        msg = r.text
    msg = f"{what} answered {r.status_code}: {str(msg)[:500]}"
    ra = r.headers.get("retry-after")
    try:
        retry_after = float(ra) if ra is not None else None
    except ValueError:
        retry_after = None
    if r.status_code == 429:
        raise RateLimited(msg, retry_after=retry_after)
    if r.status_code >= 500 or r.status_code == 408:
        raise TransientError(msg, retry_after=retry_after)
    raise TaskError(msg)


def _post(url: str, *, json_body: Any, headers: dict[str, str], timeout: float | None, what: str,
          method: str = "POST") -> httpx.Response:
    try:
        r = _http(timeout).request(method, url, json=json_body, headers=headers, timeout=timeout)
    except httpx.TimeoutException as e:
        raise TransientError(f"{what} did not answer in time ({type(e).__name__})") from e
    except httpx.TransportError as e:
        raise TransientError(f"cannot reach {what}: {type(e).__name__}: {e}") from e
    _raise_for(r, what)
    return r


# --- a prompt through the gateway ------------------------------------------------------------------


class PromptTask:
    """Compile a prompt with the item's variables and call a model through Podium's gateway.

    ``prompt`` is a :class:`~podium.core.prompts.Prompt`, a registry reference
    (``"prompts:/qa@production"``, ``"prompts:/qa/3"``; fetched once through ``prompt_client``, or,
    without one, through the client of the run that binds it: ``podium.evaluate`` and
    :class:`~podium.experiments.runner.Runner` call :meth:`bind`), a template string (one user
    message) or a list of chat messages. ``model`` overrides the prompt's configured model (default ``"local"``); ``params`` (temperature, max_tokens, ...)
    override its config. The gateway is ``base_url`` + ``/v1`` with ``api_key`` (a secret key).
    ``cache=False`` (the default) bypasses the gateway's response cache: an evaluation measures
    the model, and repetitions must be fresh samples.
    """

    def __init__(
        self,
        prompt: Any,
        *,
        model: str | None = None,
        base_url: str,
        api_key: str | None,
        params: Mapping[str, Any] | None = None,
        prompt_client: Any = None,
        name: str | None = None,
        label: str | None = None,
        cache: bool = False,
        endpoint: str | None = None,
    ) -> None:
        self._ref: str | None = None
        self._model_arg = model
        if isinstance(prompt, str) and prompt.startswith("prompts:/") and prompt_client is None:
            self._ref = prompt  # resolved by bind(client) when the run starts
            self._prompt: Prompt | None = None
        else:
            self._prompt = _as_prompt(prompt, prompt_client)
        # an OpenAI-compatible server called directly instead of the gateway (promptfoo's apiBaseUrl);
        # its key is ``api_key`` and is never described (stored)
        self.endpoint = endpoint.rstrip("/") + "/chat/completions" if endpoint else None
        self.cache = cache
        self.model = model or (self._prompt.config.get("model") if self._prompt else None) or "local"
        self.params = dict(params or {})
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.label = label
        if name:
            self.name = name
        elif self._prompt is None:
            self.name = _ref_name(prompt)
        else:
            self.name = self._prompt.name if self._prompt.version is not None else "prompt"

    @property
    def prompt(self) -> Prompt:
        if self._prompt is None:
            raise ConfigurationError(
                f"PromptTask({self._ref!r}) has not fetched its prompt: pass prompt_client= "
                "(e.g. podium.get_client().prompts), or run it through podium.evaluate(...) or a Runner(client=...)")
        return self._prompt

    def bind(self, client: Any) -> None:
        """Fetch a ``prompts:/...`` reference through ``client.prompts`` (a :class:`podium.Podium`);
        nothing to do for any other prompt or when it is already fetched."""
        if self._prompt is not None:
            return
        self._prompt = _as_prompt(self._ref, client.prompts)
        if self._model_arg is None:
            self.model = self._prompt.config.get("model") or "local"

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "prompt", "model": self.model, "params": self.params}
        if self.prompt.version is not None:
            d.update(prompt_name=self.prompt.name, prompt_version=self.prompt.version)
        else:
            d["prompt"] = self.prompt.prompt
        if self.label:
            d["label"] = self.label
        if self.endpoint:
            d["endpoint"] = self.endpoint
        return d

    def messages(self, item: DatasetItem) -> dict[str, Any]:
        """The chat request body for an item (without the model call)."""
        kwargs = self.prompt.openai_kwargs(**item_variables(item))
        body = {**kwargs, **self.params, "model": self.model}
        body["messages"] = [dict(m) for m in kwargs["messages"]]
        return body

    def run(self, item: DatasetItem, ctx: TaskContext) -> TaskOutput:
        try:
            body = self.messages(item)
        except ValidationFailed as e:
            raise TaskError(str(e)) from e
        if self.endpoint is None:  # Podium's extension of the request: only the gateway reads it
            podium: dict[str, Any] = {"metadata": {"experiment_id": ctx.experiment_id, "item_id": item.id}}
            if not self.cache:
                podium["cache"] = False
            if ctx.trace_id:
                podium.update(trace_id=ctx.trace_id, parent_id=ctx.span_id)
            body["podium"] = podium
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = self.endpoint or f"{self.base_url}/v1/chat/completions"
        what = f"{self.endpoint} (model {self.model!r})" if self.endpoint else f"the gateway (model {self.model!r})"
        r = _post(url, json_body=body, headers=headers, timeout=ctx.timeout, what=what)
        try:
            data = r.json()
            text = data["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise TaskError(f"the gateway's reply is not a chat completion: {r.text[:300]}") from e
        usage = _usage(data.get("usage"))
        cost = compute_cost(data.get("model") or self.model, usage) if usage else None
        meta = {"model": data.get("model") or self.model}
        if self.prompt.version is not None:
            meta.update(prompt_name=self.prompt.name, prompt_version=self.prompt.version)
        return TaskOutput(text, usage=usage, cost=cost["total"] if cost else None, model=meta["model"], metadata=meta)


def _usage(u: Any) -> dict[str, int] | None:
    if not isinstance(u, Mapping):
        return None
    n_in = u.get("prompt_tokens", u.get("input_tokens"))
    n_out = u.get("completion_tokens", u.get("output_tokens"))
    out = {}
    if isinstance(n_in, int):
        out["input_tokens"] = n_in
    if isinstance(n_out, int):
        out["output_tokens"] = n_out
    if out:
        out["total_tokens"] = out.get("input_tokens", 0) + out.get("output_tokens", 0)
    return out or None


def _ref_name(ref: str) -> str:
    """``prompts:/qa@production`` and ``prompts:/qa/3`` -> ``qa``."""
    body = ref[len("prompts:/"):]
    name = body.partition("@")[0]
    head, _, tail = name.rpartition("/")
    return head if head and tail.isdigit() else name


def _as_prompt(prompt: Any, client: Any) -> Prompt:
    if isinstance(prompt, Prompt):
        return prompt
    if isinstance(prompt, str) and prompt.startswith("prompts:/"):
        if client is None:
            raise ConfigurationError(f"prompt {prompt!r} is in the registry: pass prompt_client= "
                                     "(e.g. podium.get_client().prompts)")
        found: Prompt = client.get(prompt, cache_ttl_seconds=0)
        return found
    if isinstance(prompt, str):
        return Prompt(name="prompt", prompt=prompt, type="text")
    if isinstance(prompt, Sequence):
        return Prompt(name="prompt", prompt=[dict(m) for m in prompt], type="chat")
    raise ConfigurationError(f"a prompt is a Prompt, 'prompts:/NAME@LABEL', a template string or chat messages, "
                             f"got {type(prompt).__name__}")


# --- any HTTP endpoint ------------------------------------------------------------------------------

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def _lookup(values: Mapping[str, Any] | list[Any], path: str) -> Any:
    cur: Any = values
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(path)
    return cur


def _render(template: Any, values: Mapping[str, Any]) -> Any:
    """Fill ``{{var}}`` in every string of a JSON template. A string that is exactly one
    ``{{var}}`` becomes the value itself (so objects and numbers keep their type)."""
    if isinstance(template, str):
        whole = _VAR.fullmatch(template.strip())
        if whole:
            return _lookup(values, whole.group(1))

        def sub(m: re.Match[str]) -> str:
            v = _lookup(values, m.group(1))
            return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)

        return _VAR.sub(sub, template)
    if isinstance(template, Mapping):
        return {k: _render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_render(v, values) for v in template]
    return template


class HttpTask:
    """POST (or ``method``) each item to ``url``. ``body`` is a JSON template whose strings may
    use ``{{input}}``, ``{{expected}}`` or the input's own keys (``{{question}}``; dotted paths
    work); without ``body`` the item's input is sent as is. ``output`` picks the answer out of
    the JSON reply with a dotted path (``"choices.0.message.content"``); without it the whole
    JSON (or the text) is the output. A W3C ``traceparent`` header links the call to the item's
    trace."""

    def __init__(
        self,
        url: str,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        output: str | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"an HTTP task needs an http:// or https:// url, got {url!r}")
        self.url = url
        self.method = method.upper()
        self.headers = dict(headers or {})
        self.body = body
        self.output = output
        self.name = name or "http"

    def describe(self) -> dict[str, Any]:
        return {"type": "http", "url": self.url, "method": self.method, "output": self.output}

    def run(self, item: DatasetItem, ctx: TaskContext) -> TaskOutput:
        values = item_variables(item)
        try:
            body = _render(self.body, values) if self.body is not None else item.input
        except KeyError as e:
            raise TaskError(f"the HTTP task's body uses {{{{{e.args[0]}}}}}, which this item does not have; "
                            f"it has: {', '.join(sorted(values))}") from None
        headers = dict(self.headers)
        if ctx.trace_id and ctx.span_id:
            headers["traceparent"] = f"00-{ctx.trace_id}-{ctx.span_id}-01"
        r = _post(self.url, json_body=body if self.method != "GET" else None, headers=headers, timeout=ctx.timeout,
                  what=self.url, method=self.method)
        try:
            data: Any = r.json()
        except ValueError:
            data = r.text
        if self.output:
            try:
                data = _lookup(data, self.output) if isinstance(data, Mapping | list) else _raise_key(self.output)
            except KeyError:
                raise TaskError(f"the reply has no {self.output!r}: {r.text[:300]}") from None
        return TaskOutput(data)


def _raise_key(path: str) -> Any:
    raise KeyError(path)


def as_task(task: Any) -> Any:
    """A task from a task object (anything with ``run`` and ``describe``) or a callable."""
    if hasattr(task, "run") and hasattr(task, "describe"):
        return task
    if callable(task):
        return PythonTask(task)
    raise ConfigurationError(f"cannot use {type(task).__name__} as a task: give a function, a PromptTask or an "
                             "HttpTask")

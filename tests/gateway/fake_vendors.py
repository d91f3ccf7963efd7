"""Small real HTTP servers that answer like Anthropic's and Google's APIs, scripted per test.

One raw ASGI app served by uvicorn in a thread. It records every request (method, path,
query, headers, JSON body) and answers with the next scripted :class:`Answer`::

    v = FakeVendor().start()
    v.script(Json(200, anthropic_message("hi")), Sse(anthropic_events("a", "b")))
    ... v.requests[0]["body"] ...
    v.stop()

``Sse(events, abort=True)`` drops the connection after the events (a broken chunked body);
``Sse(events)`` ends the body cleanly after them; ``delay`` waits before the headers.
Unscripted requests get a 500.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FakeVendor",
    "Json",
    "Sse",
    "anthropic_events",
    "anthropic_message",
    "gemini_response",
]


@dataclass
class Json:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Sse:
    events: list[tuple[str | None, Any]] = field(default_factory=list)  # (event name, data)
    abort: bool = False
    delay: float = 0.0


Answer = Json | Sse


class _Abort(Exception):
    pass


class FakeVendor:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self.url = ""

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._answers.extend(answers)

    def start(self) -> FakeVendor:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        config = uvicorn.Config(
            self, host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="fake-vendor")
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake vendor did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.requests.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "query": scope["query_string"].decode(),
                "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
                "body": json.loads(raw) if raw else None,
            }
        )
        with self._lock:
            answer: Answer = self._answers.popleft() if self._answers else Json(500, {"error": "unscripted"})
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer, Json):
            body = json.dumps(answer.body).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            headers += [(k.encode(), v.encode()) for k, v in answer.headers.items()]
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for name, data in answer.events:
            text = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {name}\n" if name else "") + "".join(
                f"data: {line}\n" for line in text.split("\n")
            )
            await send({"type": "http.response.body", "body": (frame + "\n").encode(), "more_body": True})
            await asyncio.sleep(0)
        if answer.abort:
            raise _Abort("connection dropped on purpose")  # uvicorn closes the socket mid-body
        await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- canned vendor payloads -------------------------------------------------------------------


def anthropic_message(
    text: str | None = "Hello!",
    *,
    tool_use: dict[str, Any] | None = None,
    stop_reason: str = "end_turn",
    usage: dict[str, Any] | None = None,
    model: str = "claude-test-1",
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_use is not None:
        content.append({"type": "tool_use", **tool_use})
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 12, "output_tokens": 5},
    }


def anthropic_events(
    *texts: str,
    tool: tuple[str, str, list[str]] | None = None,
    stop_reason: str = "end_turn",
    input_tokens: int = 12,
    output_tokens: int = 7,
    cache_read: int = 0,
    stop: bool = True,
) -> list[tuple[str | None, Any]]:
    """A Messages stream: one text block with ``texts`` as deltas, then optionally a tool block."""
    ev: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_stream",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test-1",
                    "content": [],
                    "stop_reason": None,
                    "usage": {
                        "input_tokens": input_tokens,
                        "output_tokens": 1,
                        "cache_read_input_tokens": cache_read,
                    },
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    idx = 0
    if texts:
        ev.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        for t in texts:
            ev.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
                )
            )
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        idx = 1
    if tool is not None:
        tool_id, name, parts = tool
        ev.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": idx,
                    "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
                },
            )
        )
        for p in ["", *parts]:
            ev.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": idx,
                        "delta": {"type": "input_json_delta", "partial_json": p},
                    },
                )
            )
        ev.append(("content_block_stop", {"type": "content_block_stop", "index": idx}))
    ev.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    if stop:
        ev.append(("message_stop", {"type": "message_stop"}))
    return ev


def gemini_response(
    *parts: dict[str, Any],
    finish: str | None = "STOP",
    usage: dict[str, Any] | None = None,
    model_version: str = "gemini-test-001",
) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [cand], "modelVersion": model_version, "responseId": "resp-1"}
    if usage is not None:
        out["usageMetadata"] = usage
    return out

"""A tiny OpenAI-protocol server (http.server in a thread) for the wrapper tests.

Speaks ``/v1/chat/completions`` (JSON and SSE), ``/v1/completions`` and ``/v1/embeddings``
(float and base64). Model ``bad-model`` answers 400 with OpenAI's error shape; model
``stream-error`` sends one chunk and then an error event.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Hello there"


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 1},
    }


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                owner.requests.append({"path": self.path, "body": body})
                model = body.get("model", "")
                if model == "bad-model":
                    self._json(
                        400, {"error": {"message": "model not found", "type": "invalid_request_error"}}
                    )
                elif self.path == "/v1/chat/completions":
                    if body.get("stream"):
                        self._chat_stream(model, error=model == "stream-error")
                    else:
                        self._json(200, self._chat(model, body))
                elif self.path == "/v1/completions":
                    if body.get("stream"):
                        self._sse(
                            [
                                {
                                    "id": "c",
                                    "object": "text_completion",
                                    "created": 1,
                                    "model": model,
                                    "choices": [
                                        {"index": 0, "text": part, "finish_reason": None, "logprobs": None}
                                    ],
                                }
                                for part in ("Hel", "lo")
                            ]
                        )
                    else:
                        self._json(
                            200,
                            {
                                "id": "cmpl-1",
                                "object": "text_completion",
                                "created": 1,
                                "model": model,
                                "choices": [
                                    {"index": 0, "text": "Hello", "finish_reason": "stop", "logprobs": None}
                                ],
                                "usage": _usage(2, 1),
                            },
                        )
                elif self.path == "/v1/embeddings":
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    vector = [0.5, 0.25, 0.125]
                    encoded: Any = vector
                    if body.get("encoding_format") == "base64":
                        encoded = base64.b64encode(struct.pack("<3f", *vector)).decode()
                    self._json(
                        200,
                        {
                            "object": "list",
                            "model": model,
                            "data": [
                                {"object": "embedding", "index": i, "embedding": encoded}
                                for i in range(len(inputs))
                            ],
                            "usage": {"prompt_tokens": 4, "total_tokens": 4},
                        },
                    )
                else:
                    self._json(404, {"error": {"message": "no route"}})

            def _chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
                n = body.get("n") or 1
                return {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": f"{model}-2024",
                    "choices": [
                        {
                            "index": i,
                            "finish_reason": "stop",
                            "logprobs": None,
                            "message": {"role": "assistant", "content": REPLY if n == 1 else f"{REPLY} {i}"},
                        }
                        for i in range(n)
                    ],
                    "usage": _usage(5, 2),
                }

            def _chat_stream(self, model: str, *, error: bool) -> None:
                def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
                    return {
                        "id": "chatcmpl-2",
                        "object": "chat.completion.chunk",
                        "created": 1,
                        "model": f"{model}-2024",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                    }

                events: list[dict[str, Any]] = [
                    chunk({"role": "assistant", "content": ""}),
                    chunk({"content": "Hel"}),
                ]
                if error:
                    events.append({"error": {"message": "upstream exploded", "type": "server_error"}})
                else:
                    events += [chunk({"content": "lo"}), chunk({}, "stop")]
                self._sse(events)

            def _sse(self, events: list[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for event in events:
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                except OSError:  # the client closed the stream early: that is what some tests do
                    pass

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

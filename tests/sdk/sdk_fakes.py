"""Fakes for the SDK tests: an ingest endpoint (httpx.MockTransport, or a real HTTP
server in a thread) that validates every item against the wire records and upserts by id,
like the real server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from pydantic import ValidationError

import podium
from podium.core.records import IngestItem, ScoreIn, SpanIn, TraceIn

MODELS: dict[str, Any] = {"span": SpanIn, "trace": TraceIn, "score": ScoreIn}

Reply = int | httpx.Response | Callable[[list[dict[str, Any]]], httpx.Response] | Exception


def ingest_reply(batch: list[dict[str, Any]], store: dict[tuple[str, str], dict[str, Any]]) -> httpx.Response:
    """What the real server answers: per-item validation, upsert by id, 200 or 207."""
    successes, errors = [], []
    for index, raw in enumerate(batch):
        try:
            item = IngestItem.model_validate(raw)
            record = MODELS[item.type].model_validate(item.body)
        except ValidationError as exc:
            errors.append({"index": index, "id": None, "status": 422, "message": str(exc.errors()[0]["msg"])})
            continue
        key = (item.type, str(getattr(record, "id", None) or index))
        store[key] = item.body
        successes.append({"index": index, "id": key[1]})
    return httpx.Response(207 if errors else 200, json={"successes": successes, "errors": errors})


class FakeIngest:
    """Records every request; answers like the server unless scripted otherwise."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # {"batch": [...], "auth": ..., "time": ...}
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.script: list[Reply] = []
        self.gate: threading.Event | None = None  # when set up, requests wait for it
        self.client = httpx.Client(transport=httpx.MockTransport(self.handle))

    def reply(self, *replies: Reply) -> None:
        with self.lock:
            self.script.extend(replies)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.path == "/api/v1/ingest"
        if self.gate is not None:
            self.gate.wait(10)
        batch = json.loads(request.content)["batch"]
        with self.lock:
            self.requests.append(
                {"batch": batch, "auth": request.headers.get("authorization"), "time": time.monotonic()}
            )
            scripted = self.script.pop(0) if self.script else None
            if scripted is None:
                return ingest_reply(batch, self.stored)
        if isinstance(scripted, Exception):
            raise scripted
        if isinstance(scripted, int):
            return httpx.Response(
                scripted, json={"error": {"code": "x", "message": f"scripted {scripted}", "details": []}}
            )
        if isinstance(scripted, httpx.Response):
            return scripted
        return scripted(batch)

    def items(self, kind: str = "span") -> list[dict[str, Any]]:
        with self.lock:
            return [body for (t, _), body in self.stored.items() if t == kind]

    def spans(self) -> dict[str, dict[str, Any]]:
        """Stored spans by name (names are unique within a test)."""
        return {s["name"]: s for s in self.items("span")}

    def sent_ids(self) -> list[str]:
        with self.lock:
            return [item["body"].get("id") for r in self.requests for item in r["batch"]]


def make_client(ingest: FakeIngest, **kwargs: Any) -> podium.Podium:
    options: dict[str, Any] = {
        "public_key": "pk-test",
        "secret_key": "sk-test",
        "http_client": ingest.client,
        "flush_interval": 0.02,
        "retry_backoff": 0.01,
        **kwargs,
    }
    return podium.configure(**options)


# --- a real HTTP ingest server (for fork and network tests) -------------------------------


class HttpIngest:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                batch = json.loads(self.rfile.read(length))["batch"]
                with owner.lock:
                    owner.received.extend(batch)
                    reply = ingest_reply(batch, owner.store)
                body = reply.content
                self.send_response(reply.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def names(self) -> list[str]:
        with self.lock:
            return [item["body"]["name"] for item in self.received if item["type"] == "span"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

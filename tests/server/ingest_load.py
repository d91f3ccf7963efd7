"""Helpers for the crash and overload tests: `podium up` as a subprocess on the test's
database, native and OTLP request bodies with fresh ids, and reading back what was stored."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from sqlalchemy import text

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


@dataclass
class ServerProcess:
    """`python -m podium.cli up` on ``db_url``; ``kill()`` is SIGKILL (no shutdown hooks)."""

    db_url: str
    home: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    argv: list[str] | None = None  # default: python -m podium.cli up --port PORT
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        env = {**os.environ, "PODIUM_HOME": str(self.home), "PODIUM_DATABASE_URL": self.db_url, **self.env_extra}
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / f"server-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            self.argv or [sys.executable, "-m", "podium.cli", "up", "--port", str(self.port)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"podium up exited with {self.proc.returncode}: {self.logs()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"podium up did not answer within {timeout} s: {self.logs()[-3000:]}")
            time.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.glob("server-*.log")))

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def health(self) -> dict[str, Any]:
        return httpx.get(self.url + "/api/v1/health", timeout=5).json()["ingest"]  # type: ignore[no-any-return]

    def rss_kib(self, key: str = "VmRSS") -> int:
        """VmRSS (now) or VmHWM (peak) of the server process, in KiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")


# --- request bodies ---------------------------------------------------------------------------


def native_body(n: int, pad: int = 0) -> tuple[bytes, list[str]]:
    """A native batch of ``n`` spans (one new trace), each with ``pad`` bytes of input."""
    trace = secrets.token_hex(16)
    ids = [secrets.token_hex(8) for _ in range(n)]
    filler = "x" * pad
    batch = [
        {
            "type": "span",
            "body": {
                "id": sid, "trace_id": trace, "parent_id": ids[0] if i else None, "name": f"step {i}",
                "kind": "chain" if i == 0 else "generation", "model": None if i == 0 else "gpt-4o-mini",
                "start_time": "2026-11-23T10:00:00Z", "end_time": "2026-11-23T10:00:01Z",
                "input": {"q": filler} if pad else {"q": i}, "output": "ok",
                "usage": None if i == 0 else {"input_tokens": 10, "output_tokens": 3},
            },
        }
        for i, sid in enumerate(ids)
    ]
    return json.dumps({"batch": batch}).encode(), ids


def otlp_body(n: int, pad: int = 0) -> tuple[bytes, list[str]]:
    """An OTLP ExportTraceServiceRequest (protobuf) of ``n`` spans in one new trace."""
    trace = secrets.token_bytes(16)
    span_ids = [secrets.token_bytes(8) for _ in range(n)]
    start = 1_795_000_000 * NS
    spans = [
        Span(
            trace_id=trace, span_id=sid, parent_span_id=span_ids[0] if i else b"", name=f"op {i}",
            kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start, end_time_unix_nano=start + NS,
            attributes=[
                KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="gpt-4o-mini")),
                KeyValue(key="input.value", value=AnyValue(string_value="y" * pad if pad else f"in {i}")),
            ],
        )
        for i, sid in enumerate(span_ids)
    ]
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])
    return req.SerializeToString(), [s.hex() for s in span_ids]


NATIVE = ("/api/v1/ingest", "application/json", native_body)
OTLP = ("/v1/traces", "application/x-protobuf", otlp_body)


def acknowledged(protocol: str, response: httpx.Response) -> bool:
    """True when the server acknowledged every span of the request (stored, by contract)."""
    if response.status_code != 200:
        return False
    if protocol == "otlp":
        out = ExportTraceServiceResponse()
        out.ParseFromString(response.content)
        return out.partial_success.rejected_spans == 0
    return not response.json()["errors"]


def stored_span_ids(store: Any, project_id: str) -> list[str]:
    with store.engine.connect() as c:
        rows = c.execute(text("SELECT id FROM span WHERE project_id = :p"), {"p": project_id}).all()
    return [r[0] for r in rows]

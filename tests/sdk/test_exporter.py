"""Delivery: batching, retries, 207/413/4xx handling, queue bounds, flush, shutdown, fork, mask."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import podium
from podium.sdk.exporter import FlushResult, parse_retry_after
from tests.sdk.sdk_fakes import FakeIngest, HttpIngest, make_client


def record(n: int, prefix: str = "s") -> None:
    for i in range(n):
        with podium.span(f"{prefix}{i}"):
            pass


def test_batches_by_size_with_auth(ingest: FakeIngest) -> None:
    make_client(ingest, flush_at=4, flush_interval=30)  # only size (or flush) can send
    record(8)
    deadline = time.monotonic() + 5
    while len(ingest.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(r["batch"]) for r in ingest.requests] == [4, 4]
    assert ingest.requests[0]["auth"].startswith("Basic ")
    assert podium.flush(timeout=5) == FlushResult(sent=8, dropped=0, failed=0, pending=0)


def test_batches_by_interval(ingest: FakeIngest) -> None:
    make_client(ingest, flush_at=1000, flush_interval=0.05)
    record(3)
    deadline = time.monotonic() + 5
    while not ingest.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ingest.requests) == 1 and len(ingest.requests[0]["batch"]) == 3


def test_flush_sends_now_and_counts(ingest: FakeIngest) -> None:
    client = make_client(ingest, flush_at=1000, flush_interval=60)
    record(5)
    assert client.counters().pending == 5
    assert podium.flush(timeout=5) == FlushResult(sent=5, dropped=0, failed=0, pending=0)
    record(2, "t")
    assert podium.flush(timeout=5).sent == 7  # cumulative


def test_5xx_then_success_is_retried_without_duplicates(ingest: FakeIngest) -> None:
    make_client(ingest, flush_at=10)
    ingest.reply(500, 503)
    record(3)
    result = podium.flush(timeout=5)
    assert result == FlushResult(sent=3, dropped=0, failed=0, pending=0)
    assert len(ingest.requests) == 3
    first_ids = [item["body"]["id"] for item in ingest.requests[0]["batch"]]
    for request in ingest.requests[1:]:
        assert [item["body"]["id"] for item in request["batch"]] == first_ids  # same ids: the server dedupes
    assert len(ingest.items()) == 3


def test_429_honours_retry_after(ingest: FakeIngest) -> None:
    make_client(ingest, flush_at=10, retry_backoff=0.0)
    ingest.reply(
        httpx.Response(429, headers={"Retry-After": "0.3"}, json={"error": {"message": "slow down"}})
    )
    record(2)
    assert podium.flush(timeout=5).sent == 2
    assert len(ingest.requests) == 2
    assert ingest.requests[1]["time"] - ingest.requests[0]["time"] >= 0.28


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("99999") == 60.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30


def test_server_down_retries_then_counts_failed(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    podium.configure(
        base_url=f"http://127.0.0.1:{port}",
        public_key="pk",
        secret_key="sk",
        flush_interval=0.01,
        max_retries=2,
        retry_backoff=0.01,
        timeout=1,
    )
    with caplog.at_level(logging.WARNING, logger="podium"):
        record(4)
        result = podium.flush(timeout=10)
    assert result == FlushResult(sent=0, dropped=0, failed=4, pending=0)
    assert any("gave up after 3 attempts" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_fail_the_batch_without_retry(
    ingest: FakeIngest, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    make_client(ingest, flush_at=10)
    ingest.reply(status)
    with caplog.at_level(logging.WARNING, logger="podium"):
        record(3)
        result = podium.flush(timeout=5)
    assert result == FlushResult(sent=0, dropped=0, failed=3, pending=0)
    assert len(ingest.requests) == 1
    assert any(f"scripted {status}" in r.getMessage() for r in caplog.records)


def test_207_partial_counts_failed(ingest: FakeIngest, caplog: pytest.LogCaptureFixture) -> None:
    make_client(ingest, flush_at=10)

    def partial(batch: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(
            207,
            json={
                "successes": [{"index": i, "id": "x"} for i in range(1, len(batch))],
                "errors": [
                    {"index": 0, "id": None, "status": 422, "message": "end_time is before start_time"}
                ],
            },
        )

    ingest.reply(partial)
    with caplog.at_level(logging.WARNING, logger="podium"):
        record(4)
        result = podium.flush(timeout=5)
    assert result == FlushResult(sent=3, dropped=0, failed=1, pending=0)
    assert len(ingest.requests) == 1  # per-item rejections are not retried
    assert any("end_time is before start_time" in r.getMessage() for r in caplog.records)


def test_413_splits_the_batch(ingest: FakeIngest) -> None:
    make_client(ingest, flush_at=8, flush_interval=30)

    def too_large_over_two(batch: list[dict[str, Any]]) -> httpx.Response:
        if len(batch) > 2:
            return httpx.Response(413, json={"error": {"message": "too large"}})
        from tests.sdk.sdk_fakes import ingest_reply

        return ingest_reply(batch, ingest.stored)

    ingest.reply(*([too_large_over_two] * 7))
    record(8)
    assert podium.flush(timeout=5) == FlushResult(sent=8, dropped=0, failed=0, pending=0)
    sizes = [len(r["batch"]) for r in ingest.requests]
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    assert len(ingest.items()) == 8


def test_413_single_item_fails(ingest: FakeIngest) -> None:
    make_client(ingest, flush_at=1)
    ingest.reply(413)
    record(1)
    assert podium.flush(timeout=5) == FlushResult(sent=0, dropped=0, failed=1, pending=0)


def test_queue_full_drops_counts_warns_and_stays_bounded(
    ingest: FakeIngest, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(ingest, flush_at=5, max_queue_size=10)
    ingest.gate = threading.Event()  # the "server" hangs: the worker holds one batch
    with caplog.at_level(logging.WARNING, logger="podium"):
        record(200)
    exporter = client._exporter
    assert exporter._queue.qsize() <= 10
    counters = client.counters()
    assert counters.dropped >= 200 - 10 - 5
    assert counters.pending <= 15
    warnings = [r.getMessage() for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1  # rate limited
    assert "PODIUM_MAX_QUEUE_SIZE" in warnings[0]
    ingest.gate.set()
    result = podium.flush(timeout=5)
    assert result.pending == 0 and result.failed == 0
    assert result.sent + result.dropped == 200


def test_missing_keys_drop_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    client = podium.configure()  # no keys in the environment
    with caplog.at_level(logging.WARNING, logger="podium"):
        record(3)
        podium.create_score("s", 1.0, trace_id="abc")
    assert client.flush() == FlushResult(sent=0, dropped=4, failed=0, pending=0)
    warnings = [r.getMessage() for r in caplog.records if "no keys" in r.getMessage()]
    assert len(warnings) == 1 and "PODIUM_PUBLIC_KEY" in warnings[0]
    assert client._exporter._thread is None


def test_shutdown_flushes_stops_and_drops_later_items(ingest: FakeIngest) -> None:
    client = make_client(ingest, flush_at=1000, flush_interval=60)
    record(3)
    thread = client._exporter._thread
    assert thread is not None and thread.daemon
    result = client.shutdown(timeout=5)
    assert result == FlushResult(sent=3, dropped=0, failed=0, pending=0)
    assert not thread.is_alive()
    assert client._exporter._atexit_registered is False
    with client.span("late"):
        pass
    assert client.counters() == FlushResult(sent=3, dropped=1, failed=0, pending=0)
    assert client.shutdown() == client.counters()  # idempotent


def test_shutdown_timeout_gives_up_on_a_down_server(ingest: FakeIngest) -> None:
    client = make_client(ingest, flush_at=2, max_retries=50, retry_backoff=0.2)
    ingest.reply(*([503] * 1000))
    record(6)
    started = time.monotonic()
    result = client.shutdown(timeout=0.5)
    assert time.monotonic() - started < 4
    assert result.sent == 0 and result.failed == 6 and result.pending == 0


def test_configure_replaces_and_shuts_down_the_old_client(ingest: FakeIngest) -> None:
    old = make_client(ingest, flush_at=1000, flush_interval=60)
    record(2)
    new = make_client(ingest)
    assert podium.get_client() is new
    assert old.counters().sent == 2  # flushed on the way out
    assert old._exporter._closed


def test_mask_is_applied_and_a_failing_mask_never_leaks(
    ingest: FakeIngest, caplog: pytest.LogCaptureFixture
) -> None:
    def redact(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("secret", "***")
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    make_client(ingest, mask=redact)
    with (
        podium.propagate_attributes(metadata={"note": "secret trace"}),
        podium.span("masked", input="my secret", metadata={"k": ["secret"]}) as s,
    ):
        s.update(output={"answer": "secret sauce"})
    podium.flush(timeout=5)
    body = ingest.spans()["masked"]
    assert body["input"] == "my ***"
    assert body["output"] == {"answer": "*** sauce"}
    assert body["metadata"] == {"k": ["***"]}
    assert body["trace_metadata"] == {"note": "*** trace"}

    def broken(value: Any) -> Any:
        raise RuntimeError("mask bug")

    make_client(ingest, mask=broken)
    with caplog.at_level(logging.WARNING, logger="podium"):
        for _ in range(3):
            with podium.span("unmasked", input="my secret") as s:
                s.update(metadata={"password": "secret"})
        podium.flush(timeout=5)
    body = ingest.spans()["unmasked"]
    assert body["input"] == "<masking failed>"
    assert body["metadata"] == {"value": "<masking failed>"}
    assert "secret" not in json.dumps(ingest.requests[-1]["batch"])
    assert len([r for r in caplog.records if "mask function raised" in r.getMessage()]) == 1


def test_large_fields_are_truncated(ingest: FakeIngest) -> None:
    make_client(ingest, max_field_chars=1000)
    with podium.span("big", input="x" * 5000) as s:
        s.update(output={"text": "y" * 5000}, status_message="z" * 20_000)
    podium.flush(timeout=5)
    body = ingest.spans()["big"]
    assert len(body["input"]) == 1000 and body["input"].endswith("…[truncated, 5000 chars]")
    assert len(body["output"]["text"]) == 1000


def test_enqueue_is_fast_and_serialization_happens_in_the_worker(ingest: FakeIngest) -> None:
    seen_threads: list[str] = []

    class Probe:
        def __repr__(self) -> str:
            seen_threads.append(threading.current_thread().name)
            return "<probe>"

    make_client(ingest)
    with podium.span("probe", input=Probe()):
        pass
    podium.flush(timeout=5)
    assert seen_threads == ["podium-exporter"]
    assert ingest.spans()["probe"]["input"] == "<probe>"


def test_fork_child_gets_a_fresh_exporter(http_ingest: HttpIngest) -> None:
    client = podium.configure(
        base_url=http_ingest.url, public_key="pk", secret_key="sk", flush_at=1000, flush_interval=60
    )
    record(1, "before-fork")
    assert client.counters().pending == 1  # queued in the parent, not sent yet
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            fresh = client.counters()
            with podium.span("child-span"):
                pass
            result = podium.flush(timeout=5)
            ok = fresh == FlushResult(0, 0, 0, 0) and result == FlushResult(
                sent=1, dropped=0, failed=0, pending=0
            )
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert podium.flush(timeout=5).sent == 1
    assert sorted(http_ingest.names()) == ["before-fork0", "child-span"]  # the parent's item sent once


def test_spans_are_sent_at_exit_without_flush(http_ingest: HttpIngest) -> None:
    code = "import podium\nwith podium.span('at-exit'):\n    pass\n"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PODIUM_BASE_URL": http_ingest.url,
        "PODIUM_PUBLIC_KEY": "pk",
        "PODIUM_SECRET_KEY": "sk",
        "PODIUM_FLUSH_INTERVAL": "60",
    }
    repo = Path(podium.__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=repo, timeout=60)
    assert http_ingest.names() == ["at-exit"]

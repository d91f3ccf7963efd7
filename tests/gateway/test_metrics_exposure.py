"""``GET /metrics``: who may scrape it, what it counts, what it never says (issue 10 item 10,
issue 11 item 7). Read with prometheus_client's own parser, from a real server on SQLite and
PostgreSQL, with the official ``openai`` SDK against a real fake upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from podium.config import Settings
from podium.server.app import create_app
from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "hello"}]
Factory = Callable[..., LiveServer]


@pytest.fixture
def gateway(store: Any, project: ProjectKeys, upstream: FakeUpstream, podium_home: Path) -> Iterator[Factory]:
    started: list[ServerThread] = []

    def make(**settings: Any) -> LiveServer:
        podium_home.mkdir(parents=True, exist_ok=True)
        cfg = podium_home / "gateway.yaml"
        cfg.write_text(f"models:\n  - name: fake\n    deployments:\n"
                       f"      - {{provider: openai, model: fake-a, api_base: \"{upstream.base_url}\"}}\n")
        s = Settings(gateway_config=cfg, gateway_cache="off", **settings)
        th = ServerThread(create_app(s, store=store)).start()
        started.append(th)
        return LiveServer(th.url, store, project, th.server.config.app, th)

    yield make
    for th in started:
        th.stop()


def scrape(srv: LiveServer, **headers: str) -> dict[str, Any]:
    r = httpx.get(srv.url + "/metrics", headers=headers)
    assert r.status_code == 200, r.text
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def samples(families: dict[str, Any], name: str) -> list[Any]:
    return list(families[name].samples)


def _traffic(srv: LiveServer, store: Any) -> None:
    """One of each: ok, 400, 401, 404, 413, 429 (a key limited to 1 request a minute)."""
    oai = openai.OpenAI(base_url=srv.url + "/v1", api_key=srv.keys.secret_key, max_retries=0)
    oai.chat.completions.create(model="fake", messages=MSG)
    h = {"authorization": f"Bearer {srv.keys.secret_key}"}
    assert httpx.post(srv.url + "/v1/chat/completions", json={"model": "fake"}, headers=h).status_code == 400
    assert httpx.post(srv.url + "/v1/chat/completions", json={"model": "fake", "messages": MSG},
                      headers={"authorization": "Bearer sk-wrong"}).status_code == 401
    assert httpx.post(srv.url + "/v1/chat/completions", json={"model": "made-up-name", "messages": MSG},
                      headers=h).status_code == 404
    big = {"model": "fake", "messages": [{"role": "user", "content": "x" * 3000}]}
    assert httpx.post(srv.url + "/v1/chat/completions", json=big, headers=h).status_code == 413
    limited = store.projects.create_key(srv.keys.project_id, role="gateway", limits={"rpm": 1}).secret_key
    hl = {"authorization": f"Bearer {limited}"}
    assert httpx.post(srv.url + "/v1/chat/completions", json={"model": "fake", "messages": MSG},
                      headers=hl).status_code == 200
    assert httpx.post(srv.url + "/v1/chat/completions", json={"model": "fake", "messages": MSG},
                      headers=hl).status_code == 429


def test_client_errors_are_counted_with_status_and_reason(gateway: Factory, store: Any) -> None:
    srv = gateway(max_request_bytes=2000)
    _traffic(srv, store)
    fams = scrape(srv)
    requests = samples(fams, "podium_gateway_requests")
    by_status = {s.labels["status"]: s.value for s in requests if s.name.endswith("_total")}
    assert by_status["ok"] == 2
    for status in ("400", "401", "404", "413", "429"):
        assert by_status[status] >= 1, (status, by_status)
    errors = {(s.labels["status"], s.labels["reason"]) for s in samples(fams, "podium_gateway_errors")}
    assert {("400", "validation_error"), ("401", "unauthorized"), ("404", "not_found"),
            ("413", "payload_too_large"), ("429", "rate_limited")} <= errors
    # A made-up model name is not a label: refused requests carry model="".
    assert "made-up-name" not in httpx.get(srv.url + "/metrics").text


def test_no_key_labels_by_default_and_an_opt_in(gateway: Factory, store: Any) -> None:
    srv = gateway(max_request_bytes=2000)
    _traffic(srv, store)
    text = httpx.get(srv.url + "/metrics").text
    assert srv.keys.public_key not in text and "pk-" not in text
    for f in text_string_to_metric_families(text):
        assert all("key" not in s.labels for s in f.samples), f.name
    opted = gateway(metrics_key_labels=True)
    openai.OpenAI(base_url=opted.url + "/v1", api_key=opted.keys.secret_key, max_retries=0).chat.completions.create(
        model="fake", messages=MSG)
    req = samples(scrape(opted), "podium_gateway_requests")
    assert any(s.labels.get("key") == opted.keys.public_key for s in req)


def test_standard_collectors_and_no_created_series(gateway: Factory) -> None:
    srv = gateway()
    fams = scrape(srv)
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "python_info",
                 "python_gc_collections"):
        assert name in fams, sorted(fams)
    names = {s.name for f in fams.values() for s in f.samples}
    assert not [n for n in names if n.endswith("_created")]


def test_ingestion_metrics(gateway: Factory) -> None:
    srv = gateway()
    now = time.time()
    ok = {"id": "s1", "trace_id": "t1", "name": "step", "start_time": now, "end_time": now}
    with srv.client() as c:
        r = c.post("/api/v1/ingest", json={"batch": [
            {"type": "span", "body": ok},
            {"type": "span", "body": {"id": "s2", "name": "no trace id"}},
        ]})
        assert r.status_code == 207, r.text
    fams = scrape(srv)
    accepted = samples(fams, "podium_ingest_items_accepted")[0].value
    rejected = {s.labels["reason"]: s.value for s in samples(fams, "podium_ingest_items_rejected")}
    assert accepted >= 1 and rejected["invalid"] >= 1 and rejected["queue_full"] == 0
    assert samples(fams, "podium_ingest_queue_items")[0].value >= 0
    writes = {s.name: s.value for s in samples(fams, "podium_ingest_write_duration_seconds")}
    assert writes["podium_ingest_write_duration_seconds_count"] >= 1
    assert samples(fams, "podium_ingest_items_written")[0].value >= 1


def test_metrics_token_is_required_when_set(gateway: Factory) -> None:
    srv = gateway(metrics_token="scrape-token-123")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic c2NyYXBlOnRva2Vu"}):
        r = httpx.get(srv.url + "/metrics", headers=headers)
        assert r.status_code == 401, r.text
        err = r.json()["error"]
        assert err["code"] == "unauthorized" and "PODIUM_METRICS_TOKEN" in err["message"]
    assert "podium_gateway_in_flight" in scrape(srv, authorization="Bearer scrape-token-123")


def test_without_a_token_only_this_machine_may_scrape(gateway: Factory) -> None:
    srv = gateway()
    assert "process_cpu_seconds" in scrape(srv)
    # Forwarded by a reverse proxy on this machine: refused, with the fix in the message.
    r = httpx.get(srv.url + "/metrics", headers={"x-forwarded-for": "203.0.113.7"})
    assert r.status_code == 403 and "PODIUM_METRICS_TOKEN" in r.json()["error"]["message"]
    # A server bound to a public address (the test server still listens on 127.0.0.1).
    public = gateway(host="0.0.0.0")
    r = httpx.get(public.url + "/metrics")
    assert r.status_code == 403 and "PODIUM_METRICS_TOKEN" in r.json()["error"]["message"]
    public_with_token = gateway(host="0.0.0.0", metrics_token="t0ken")
    assert "python_info" in scrape(public_with_token, authorization="Bearer t0ken")

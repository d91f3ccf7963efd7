"""Alert rules end to end on SQLite and PostgreSQL: the REST API (CRUD, validation errors in the
pinned shape, mute / unmute / resolve / test, the history with cursors) against a real server,
and the evaluation job over real ingested traces sending to a real local webhook server and a
real SMTP server (aiosmtpd): fire, resolve, mute, cooldown, and two evaluators racing."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from podium.monitor.alerting import AlertJob
from tests.conftest import LiveServer, ProjectKeys, free_port


@pytest.fixture(autouse=True)
def no_embedded_worker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run the alert job by hand (with a clock they move); the server's own worker
    would race them. ``test_embedded_worker_*`` keeps it."""
    if "embedded_worker" not in request.node.name:
        monkeypatch.setenv("PODIUM_WORKER_EMBEDDED", "false")


@dataclass
class Sink:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def firing(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["podium"]["alert"]["status"] == "firing"]


@pytest.fixture
def sink() -> Iterator[Sink]:
    state = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.bodies.append(json.loads(raw))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{srv.server_address[1]}/hook/SECRET"
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield state
    srv.shutdown()
    srv.server_close()


class Clock:
    """Real time plus an offset the test moves forward (so due rules come due at once)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, s: float) -> None:
        self.offset += timedelta(seconds=s)


def ingest(c: httpx.Client, ok: int, errors: int) -> None:
    now = datetime.now(UTC)
    batch = []
    for i in range(ok + errors):
        tid = uuid.uuid4().hex
        start = now - timedelta(seconds=1, milliseconds=i)
        batch.append({"type": "span", "body": {
            "id": uuid.uuid4().hex[:16], "trace_id": tid, "name": "chat", "start_time": start.isoformat(),
            "end_time": (start + timedelta(milliseconds=50)).isoformat(),
            "status": "error" if i < errors else "ok"}})
    r = c.post("/api/v1/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text


def rule_body(name: str, url: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "severity": "critical",
                            "condition": {"metric": "error_rate", "agg": "rate"},
                            "op": ">", "threshold": 0.2, "window_s": 300, "cooldown_s": 0, "eval_interval_s": 5,
                            "channels": [{"type": "webhook", "params": {"url": url, "retries": 0}}]}
    body.update(kw)
    return body


def err(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["message"])


def job(server: LiveServer, clock: Clock) -> AlertJob:
    return AlertJob(server.store, base_url=server.url, clock=clock)


def test_crud_validation_and_roles(server: LiveServer, sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    with server.client() as c:
        r = c.post("/api/v1/alert-rules", json=rule_body("errors", sink.url, description="5xx"))
        assert r.status_code == 201, r.text
        rule = r.json()
        assert rule["state"] == "ok" and rule["kind"] == "threshold" and rule["condition"]["metric"] == "error_rate"
        assert rule["channels"] == [{"type": "webhook", "params": {"url": "***", "retries": 0}}]  # secret hidden
        assert c.get("/api/v1/alert-rules/errors").json()["id"] == rule["id"]
        assert [x["name"] for x in c.get("/api/v1/alert-rules").json()["data"]] == ["errors"]
        p = c.patch(f"/api/v1/alert-rules/{rule['id']}", json={"threshold": 0.5, "kind": "change"})
        assert p.status_code == 200, p.text
        assert p.json()["threshold"] == 0.5 and p.json()["change_mode"] == "relative"
        assert p.json()["baseline_offset_s"] == 86400
        stored = server.store.alerts.get_rule(server.keys.project_id, rule["id"])
        assert stored["channels"][0]["params"]["url"] == sink.url  # PATCH kept the real channel
        # validation: each a 400 in the pinned shape that says what to do
        assert "unknown metric 'nope'" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, condition={"metric": "nope"})), 400)
        assert "takes agg" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, condition={"metric": "latency", "agg": "rate"})), 400)
        assert "unknown filter" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, condition={"metric": "latency", "agg": "p95", "filters": {"colour": "red"}})), 400)
        assert "kind 'threshold' only" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, condition={"drift": "inputs", "statistic": "p_value"}, kind="anomaly")), 400)
        msg = err(c.post("/api/v1/alert-rules", json=rule_body("x", sink.url, channels=[{"type": "pigeon"}])), 400)
        assert "pigeon" in msg and "webhook" in msg
        assert "http(s) URL" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, channels=[{"type": "webhook", "params": {"url": "ftp://x"}}])), 400)
        monkeypatch.delenv("NO_SUCH_HOOK", raising=False)
        assert "NO_SUCH_HOOK" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, channels=[{"type": "webhook", "params": {"url": "env:NO_SUCH_HOOK"}}])), 400)
        err(c.post("/api/v1/alert-rules", json={**rule_body("x", sink.url), "colour": "red"}), 400)
        err(c.post("/api/v1/alert-rules", json=rule_body("x", sink.url, threshold="high")), 400)
        err(c.post("/api/v1/alert-rules", json=rule_body("x", sink.url, window_s=1)), 400)
        assert "shorter than eval_interval_s" in err(c.post("/api/v1/alert-rules", json=rule_body(
            "x", sink.url, window_s=10, eval_interval_s=60)), 400)
        assert "already exists" in err(c.post("/api/v1/alert-rules", json=rule_body("errors", sink.url)), 409)
        assert "no alert rule" in err(c.get("/api/v1/alert-rules/nope"), 404)
        assert "not firing" in err(c.post(f"/api/v1/alert-rules/{rule['id']}/resolve"), 409)
        assert "say how long" in err(c.post("/api/v1/alert-rules/errors/mute", json={}), 400)
        assert "not a duration" in err(c.post("/api/v1/alert-rules/errors/mute", json={"duration": "soon"}), 400)
        monkeypatch.setenv("ALERT_HOOK", sink.url)
        ok = c.post("/api/v1/alert-rules", json=rule_body(
            "drifty", sink.url, condition={"drift": "inputs", "statistic": "p_value"}, op="<", threshold=0.01,
            channels=[{"type": "webhook", "params": {"url": "env:ALERT_HOOK"}}]))
        assert ok.status_code == 201 and ok.json()["channels"][0]["params"]["url"] == "env:ALERT_HOOK"
    viewer = server.store.projects.create_key(server.keys.project_id, role="viewer")
    vk = ProjectKeys(server.keys.project_id, viewer.key.public_key, viewer.secret_key)
    with server.client(vk) as v:
        assert v.get("/api/v1/alert-rules").status_code == 200
        assert v.get("/api/v1/alerts").status_code == 200
        assert "cannot change alert rules" in err(v.post("/api/v1/alert-rules", json=rule_body("v", sink.url)), 403)
        err(v.post("/api/v1/alert-rules/errors/mute", json={"duration": "1h"}), 403)
    with server.client() as c:
        assert c.delete("/api/v1/alert-rules/drifty").status_code == 204
        err(c.get("/api/v1/alert-rules/drifty"), 404)


def alert_samples(c: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The ``podium_alert_*`` samples on ``/metrics``: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
            for fam in text_string_to_metric_families(c.get("/metrics").text) if fam.name.startswith("podium_alert")
            for smp in fam.samples}


def test_error_rate_fires_to_webhook_then_resolves(server: LiveServer, sink: Sink) -> None:
    clock = Clock()
    j = job(server, clock)
    with server.client() as c:
        before = alert_samples(c)
        rule = c.post("/api/v1/alert-rules", json=rule_body("error-rate", sink.url)).json()
        ingest(c, ok=5, errors=5)
        assert j.run_once() == 1
        assert len(sink.bodies) == 1
        body = sink.bodies[0]
        assert body["text"].startswith("[FIRING] critical: error-rate: rate(error_rate) > 0.2 (test-project)")
        assert body["blocks"][0]["type"] == "header"
        alert = body["podium"]["alert"]
        assert alert["status"] == "firing" and alert["value"] == pytest.approx(0.5) and alert["threshold"] == 0.2
        assert alert["url"] == f"{server.url}/alerts/{rule['id']}"
        assert alert["dedup_key"] == f"podium/{server.keys.project_id}/{rule['id']}/1"
        got = c.get("/api/v1/alert-rules/error-rate").json()
        assert got["state"] == "firing" and got["last_value"] == pytest.approx(0.5) and got["episode"] == 1
        assert j.run_once() == 0  # not due again yet
        clock.advance(6)
        assert j.run_once() == 1 and len(sink.bodies) == 1  # still firing: quiet
        ingest(c, ok=45, errors=0)  # 5 of 55 fail: 9%
        clock.advance(6)
        j.run_once()
        assert len(sink.bodies) == 2
        res = sink.bodies[1]["podium"]["alert"]
        assert res["status"] == "resolved" and res["dedup_key"] == alert["dedup_key"] and res["ended_at"]
        assert c.get("/api/v1/alert-rules/error-rate").json()["state"] == "ok"
        hist = c.get("/api/v1/alerts", params={"rule": "error-rate"}).json()["data"]
        assert [e["status"] for e in hist] == ["resolved", "fired"]
        after = alert_samples(c)  # the same story in /metrics (process-wide counters: deltas)

        def delta(name: str, **labels: str) -> float:
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0.0) - before.get(key, 0.0)

        assert delta("podium_alert_deliveries_total", channel="webhook", ok="true") == 2
        assert delta("podium_alert_events_total", status="fired") == 1
        assert delta("podium_alert_events_total", status="resolved") == 1
        assert delta("podium_alert_evaluations_total", outcome="breached") == 2
        assert delta("podium_alert_evaluations_total", outcome="ok") == 1
        assert delta("podium_alert_delivery_seconds_count", channel="webhook") == 2
        fired = hist[1]
        assert fired["rule_name"] == "error-rate" and fired["value"] == pytest.approx(0.5)
        assert fired["window_end"] and fired["window_start"] and fired["threshold"] == 0.2
        (d,) = fired["deliveries"]
        assert d["ok"] and d["status"] == 200 and d["attempts"] == 1 and d["latency_ms"] > 0
        assert d["target"].startswith("http://127.0.0.1:") and "SECRET" not in json.dumps(hist)
        # filters and cursor pagination
        assert [e["status"] for e in c.get("/api/v1/alerts", params={"status": "fired"}).json()["data"]] == ["fired"]
        p1 = c.get("/api/v1/alerts", params={"limit": 1}).json()
        assert len(p1["data"]) == 1 and p1["next_cursor"]
        p2 = c.get("/api/v1/alerts", params={"limit": 1, "cursor": p1["next_cursor"]}).json()
        assert p2["data"][0]["id"] != p1["data"][0]["id"] and p2["next_cursor"] is None
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert c.get("/api/v1/alerts", params={"since": future}).json()["data"] == []
        err(c.get("/api/v1/alerts", params={"cursor": "garbage"}), 400)
        err(c.get("/api/v1/alerts", params={"status": "exploded"}), 400)


def test_mute_suppresses_manual_resolve_and_cooldown(server: LiveServer, sink: Sink) -> None:
    clock = Clock()
    j = job(server, clock)
    with server.client() as c:
        c.post("/api/v1/alert-rules", json=rule_body("errs", sink.url, cooldown_s=600, window_s=3600))
        m = c.post("/api/v1/alert-rules/errs/mute", json={"duration": "1h"})
        assert m.status_code == 200 and m.json()["muted_until"]
        ingest(c, ok=1, errors=3)
        j.run_once()
        assert sink.bodies == []  # muted: recorded, not sent
        assert c.get("/api/v1/alert-rules/errs").json()["state"] == "firing"
        assert c.get("/api/v1/alerts", params={"status": "suppressed"}).json()["data"][0]["message"].count("muted")
        u = c.post("/api/v1/alert-rules/errs/unmute")
        assert u.status_code == 200 and u.json()["muted_until"] is None
        j.run_once()  # unmute makes it due at once; still firing, never sent: send it now
        assert [b["podium"]["alert"]["status"] for b in sink.bodies] == ["firing"]
        r = c.post("/api/v1/alert-rules/errs/resolve")
        assert r.status_code == 200, r.text
        assert r.json()["rule"]["state"] == "ok" and r.json()["deliveries"][0]["ok"]
        assert [b["podium"]["alert"]["status"] for b in sink.bodies] == ["firing", "resolved"]
        clock.advance(6)
        j.run_once()  # still breaching: fires a new episode, but within the cooldown: held back
        assert len(sink.bodies) == 2
        ev = c.get("/api/v1/alerts", params={"rule": "errs", "limit": 1}).json()["data"][0]
        assert ev["status"] == "suppressed" and "cooldown" in ev["message"] and ev["episode"] == 2
        clock.advance(601)
        j.run_once()  # the cooldown is over and it still fires: sent now
        assert len(sink.bodies) == 3 and sink.bodies[2]["podium"]["alert"]["dedup_key"].endswith("/2")
        statuses = [e["status"] for e in c.get("/api/v1/alerts", params={"rule": "errs"}).json()["data"]]
        assert statuses == ["fired", "suppressed", "resolved", "fired", "unmuted", "suppressed", "muted"]
        t = c.post("/api/v1/alert-rules/errs/test")
        assert t.status_code == 200 and t.json()["deliveries"][0]["ok"]
        assert sink.bodies[3]["podium"]["alert"]["title"].startswith("Test: errs")


def test_email_through_aiosmtpd(server: LiveServer) -> None:
    from aiosmtpd.controller import Controller

    got: list[Any] = []

    class Handler:
        async def handle_DATA(self, srv: Any, session: Any, envelope: Any) -> str:
            got.append(envelope)
            return "250 OK"

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        clock = Clock()
        with server.client() as c:
            body = rule_body("mail", "http://unused", channels=[{"type": "email", "params": {
                "host": "127.0.0.1", "port": port, "security": "none", "sender": "podium@example.com",
                "to": ["oncall@example.com"]}}])
            assert c.post("/api/v1/alert-rules", json=body).status_code == 201
            ingest(c, ok=0, errors=2)
            job(server, clock).run_once()
        assert len(got) == 1 and got[0].rcpt_tos == ["oncall@example.com"]
        msg = email.message_from_bytes(got[0].content, policy=email.policy.default)
        assert str(msg["Subject"]).strip() == "[Podium] [FIRING] critical: mail: rate(error_rate) > 0.2 (test-project)"
        plain = msg.get_body(("plain",))
        assert plain is not None and f"{server.url}/alerts/" in plain.get_content()
    finally:
        ctl.stop()


def test_two_evaluators_racing_send_once(server: LiveServer, sink: Sink) -> None:
    with server.client() as c:
        for i in range(4):
            assert c.post("/api/v1/alert-rules", json=rule_body(f"race-{i}", sink.url)).status_code == 201
        ingest(c, ok=1, errors=4)
    clock = Clock()
    jobs = [job(server, clock) for _ in range(3)]
    barrier = threading.Barrier(len(jobs))
    counts: list[int] = []

    def run(j: AlertJob) -> None:
        barrier.wait()
        counts.append(j.run_once())

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sum(counts) == 4  # each rule claimed by exactly one evaluator
    assert sorted(b["podium"]["alert"]["rule"] for b in sink.bodies) == [f"race-{i}" for i in range(4)]


def test_embedded_worker_fires_and_resolves_on_its_own(server: LiveServer, sink: Sink) -> None:
    """The server's own worker (PODIUM_WORKER_EMBEDDED, on by default) runs the alert job."""
    import time

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 20
        while len(sink.bodies) < n:
            assert time.monotonic() < deadline, f"{len(sink.bodies)} alert(s) after 20 s, expected {n}"
            time.sleep(0.05)

    with server.client() as c:
        c.post("/api/v1/alert-rules", json=rule_body("auto", sink.url, eval_interval_s=1, window_s=60))
        ingest(c, ok=1, errors=3)
        wait_for(1)
        assert sink.bodies[0]["podium"]["alert"]["status"] == "firing"
        ingest(c, ok=40, errors=0)
        wait_for(2)
        assert sink.bodies[1]["podium"]["alert"]["status"] == "resolved"

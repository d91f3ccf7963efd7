"""The Alerts pages over HTTP against a real server: create a rule from the form (and a refused
one with the API's message), the list with its state badge, mute / unmute / test / resolve
buttons, the rule page's chart data and history, and a viewer who sees but cannot change."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from podium.monitor.alerting import AlertJob
from tests.conftest import LiveServer, ProjectKeys
from tests.monitor.test_alert_rules import Sink, ingest
from tests.monitor.test_alert_rules import sink as sink
from tests.ui.conftest import VIEWPORT, Watch


@pytest.fixture(autouse=True)
def no_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PODIUM_WORKER_EMBEDDED", "false")  # the test runs the alert job itself
    yield


def form(sink_url: str, **kw: str) -> dict[str, str]:
    base = {"name": "ui-errors", "severity": "critical", "enabled": "on", "watch": "metric", "metric": "error_rate",
            "agg": "rate", "filters": "", "kind": "threshold", "op": ">", "threshold": "0.2", "window_s": "300",
            "cooldown_s": "0", "renotify_s": "0", "eval_interval_s": "5", "min_samples": "0",
            "channels": json.dumps([{"type": "webhook", "params": {"url": sink_url}}])}
    base.update(kw)
    return base


def test_alert_pages(server: LiveServer, sink: Sink) -> None:
    html = {"Accept": "text/html"}
    with server.client(headers=html) as c:
        assert "No alert rules yet" in c.get("/alerts").text
        assert 'name="metric"' in c.get("/alerts/new").text
        bad = c.post("/alerts/new", data=form(sink.url, metric="nope"))
        assert bad.status_code == 400 and "unknown metric" in bad.text and 'value="ui-errors"' in bad.text
        bad = c.post("/alerts/new", data=form(sink.url, channels="[{"))
        assert bad.status_code == 400 and "channels must be JSON" in bad.text
        r = c.post("/alerts/new", data=form(sink.url))
        assert r.status_code == 303, r.text
        rule_url = r.headers["location"].split("?")[0]
        rule_id = rule_url.rsplit("/", 1)[1]
        page = c.get(rule_url).text
        assert 'id="alert-data"' in page and "/ui/static/alerts.js" in page and "<script>" not in page
        data = json.loads(re.search(r'<script type="application/json" id="alert-data">(.*?)</script>', page, re.S)
                          .group(1))  # type: ignore[union-attr]
        assert data["threshold"] == 0.2 and data["label"] == "rate(error_rate)" and len(data["t"]) == len(data["values"])
        with server.client() as api:
            ingest(api, ok=1, errors=3)
        AlertJob(server.store, base_url=server.url).run_once()
        listing = c.get("/alerts").text
        assert 'data-testid="alert-state">firing' in listing and "webhook ok" in listing
        assert c.post(f"/alerts/{rule_id}/mute", data={"duration": "1h", "next": "list"}).status_code == 303
        assert "Unmute" in c.get("/alerts").text
        assert c.post(f"/alerts/{rule_id}/unmute").status_code == 303
        assert c.post(f"/alerts/{rule_id}/test").status_code == 303 and len(sink.bodies) == 2
        assert c.post(f"/alerts/{rule_id}/resolve").status_code == 303
        assert sink.bodies[-1]["podium"]["alert"]["status"] == "resolved"
        again = c.post(f"/alerts/{rule_id}/resolve")
        assert again.status_code == 409 and "not firing" in again.text
        saved = c.post(rule_url, data=form("", threshold="0.9", channels=""))
        assert saved.status_code == 303
        stored = server.store.alerts.get_rule(server.keys.project_id, rule_id)
        assert stored["threshold"] == 0.9 and stored["channels"][0]["params"]["url"] == sink.url  # kept
        hist = c.get(rule_url).text
        for status in ("fired", "muted", "unmuted", "test", "resolved"):
            assert f">{status}</span>" in hist
        assert "SECRET" not in hist  # the webhook URL's secret path is never shown
    viewer = server.store.projects.create_key(server.keys.project_id, role="viewer")
    vk = ProjectKeys(server.keys.project_id, viewer.key.public_key, viewer.secret_key)
    with server.client(vk, headers=html) as v:
        assert "ui-errors" in v.get("/alerts").text and "Mute 1h" not in v.get("/alerts").text
        assert v.post(f"/alerts/{rule_id}/mute", data={"duration": "1h"}).status_code == 403
        assert v.get("/alerts/new").status_code == 403
    with server.client(headers=html) as c:
        assert c.post(f"/alerts/{rule_id}/delete").status_code == 303
        assert c.get(rule_url).status_code == 404


@pytest.mark.one_db
@pytest.mark.slow
def test_alerts_in_the_browser(server: LiveServer, sink: Sink, browser: Any) -> None:
    """Chromium: the list's firing badge, the rule page's uPlot chart with its threshold line,
    the mute button, the new-rule form; no script errors."""
    from playwright.sync_api import expect

    with server.client() as api:
        r = api.post("/api/v1/alert-rules", json={
            "name": "browser-errors", "severity": "critical", "condition": {"metric": "error_rate", "agg": "rate"},
            "threshold": 0.2, "window_s": 300, "cooldown_s": 0, "eval_interval_s": 5,
            "channels": [{"type": "webhook", "params": {"url": sink.url}}]})
        assert r.status_code == 201, r.text
        ingest(api, ok=1, errors=3)
    AlertJob(server.store, base_url=server.url).run_once()
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/alerts")
    row = page.locator('tr[data-rule="browser-errors"]')
    expect(row.get_by_test_id("alert-state")).to_have_text("firing")
    expect(page.get_by_test_id("alert-events")).to_contain_text("webhook ok")
    row.get_by_role("link", name="browser-errors").click()
    expect(page.locator("#chart-alert canvas").first).to_be_visible()
    assert page.evaluate("window.podiumAlertChart.series.length") == 3  # time, the value, the threshold
    page.get_by_role("button", name="Mute", exact=True).click()
    expect(page.get_by_role("button", name="Unmute")).to_be_visible()
    page.goto(server.url + "/alerts/new")
    page.fill('input[name="name"]', "p95-slow")
    page.fill('input[name="metric"]', "latency")
    page.select_option('select[name="agg"]', "p95")
    page.fill('input[name="threshold"]', "2000")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="p95-slow")).to_be_visible()
    assert watch.errors == [] and watch.dialogs == []
    ctx.close()

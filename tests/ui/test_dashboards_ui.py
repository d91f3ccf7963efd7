"""Dashboards in the UI: the list, a default dashboard's charts, copying it, the chart editor's
preview and save (one browser test), and server-side rendering, errors and roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.store.test_metrics import seed
from tests.ui.conftest import VIEWPORT, Watch


@pytest.fixture
def seeded(server: LiveServer) -> LiveServer:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    seed(server.store, server.keys.project_id, now - timedelta(hours=4))  # all six traces in the last 24 h
    return server


def ui(server: LiveServer, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html", **(headers or {})})


def test_pages_render_server_side(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        r = c.get("/dashboards")
        assert r.status_code == 200 and "Latency" in r.text and "Guardrails" in r.text
        r = c.get("/dashboards/default-users?range=24h")
        assert r.status_code == 200, r.text
        assert 'data-testid="chart-number">6<' in r.text  # "Traces": six traces in the last 24 h
        r = c.get("/dashboards/default-nope")
        assert r.status_code == 404 and "no default dashboard" in r.text
        # The editor refuses default dashboards; previews a query with an error inline.
        assert c.get("/dashboards/default-cost/chart").status_code == 400
        d = seeded.store.dashboards.create(seeded.keys.project_id, name="Mine")
        r = c.get(f"/dashboards/{d['id']}/chart", params={"metric": "traces", "agg": "p95"})
        assert r.status_code == 200 and "takes agg count, sum" in r.text
        r = c.get(f"/dashboards/{d['id']}/chart", params={"metric": "latency", "agg": "p95", "dimension": "model",
                                                          "f_environment": "prod"})
        assert r.status_code == 200 and 'id="dashboards-data"' in r.text
        r = c.get(f"/dashboards/{d['id']}/chart", params={"metric": "latency", "agg": "p95", "chart_type": "number"})
        assert 'data-testid="preview-number">5.00 s' in r.text
        # Saving needs this origin (CSRF guard).
        r = c.post(f"/dashboards/{d['id']}/chart", data={"metric": "traces", "agg": "count"},
                   headers={"origin": "http://evil.example"})
        assert r.status_code == 403


def test_roles(seeded: LiveServer) -> None:
    viewer = seeded.store.projects.create_key(seeded.keys.project_id, role="viewer")
    h = {"authorization": f"Bearer {viewer.secret_key}"}
    with ui(seeded, h) as c:
        r = c.get("/dashboards/default-latency")
        assert r.status_code == 200 and "Copy to edit" not in r.text
        assert c.get("/dashboards/default-latency/chart").status_code == 403
        r = c.post("/dashboards", data={"name": "x"}, headers={"origin": seeded.url})
        assert r.status_code == 403


@pytest.mark.one_db
@pytest.mark.slow
@pytest.mark.integration
def test_open_a_default_dashboard_copy_it_and_add_a_chart(seeded: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(seeded.url + "/")
    page.get_by_role("link", name="Dashboards", exact=True).click()
    page.get_by_test_id("default-default-latency").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Latency")
    # The number chart (p95 of 100, 200, 300, 400, 1000 and 5000 ms) and the drawn line charts.
    expect(page.get_by_test_id("chart-number").first).to_have_text("5.00 s")
    page.wait_for_function("() => window.podiumDashboardCharts && window.podiumDashboardCharts.length >= 6")
    assert page.locator(".dplot canvas").count() >= 6

    # Copy it: an editable dashboard with the same charts.
    page.get_by_test_id("copy-dashboard").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Latency (copy")
    n = page.get_by_test_id("chart").count()
    assert n == 8

    # Add a chart: cost by model as bars; the preview follows the form.
    page.get_by_test_id("add-chart").click()
    page.get_by_label("Title").fill("Cost per model")
    page.select_option("#c-metric", "cost")
    page.wait_for_load_state()
    page.select_option("#c-agg", "sum")
    page.wait_for_load_state()
    page.select_option("#c-dim", "model")
    page.wait_for_load_state()
    page.select_option("#c-type", "bar")
    page.wait_for_load_state()
    page.get_by_test_id("preview").click()
    page.wait_for_function("() => window.podiumDashboardCharts && window.podiumDashboardCharts.length == 1")
    assert page.get_by_role("img", name="Preview of Cost per model").count() == 1
    page.get_by_test_id("save-chart").click()
    expect(page.get_by_test_id("chart")).to_have_count(n + 1)
    last = page.get_by_test_id("chart").last
    expect(last).to_contain_text("Cost per model")
    expect(last).to_contain_text("sum cost by model")

    with seeded.client() as api:
        saved = [d for d in api.get("/api/v1/dashboards").json()["data"] if d["name"].startswith("Latency (copy")]
        assert len(saved) == 1 and saved[0]["chart_count"] == n + 1
        full = api.get(f"/api/v1/dashboards/{saved[0]['id']}").json()
        c = full["charts"][-1]
        assert (c["metric"], c["agg"], c["dimension"], c["chart_type"]) == ("cost", "sum", "model", "bar")
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()

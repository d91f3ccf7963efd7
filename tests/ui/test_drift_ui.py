"""The drift monitor page in chromium: both uPlot charts drawn (p-values with the threshold, the
chosen statistic), the statistic picker, new topics listed, no script errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from podium.monitor.drift.job import record_run
from tests.conftest import LiveServer, ProjectKeys
from tests.monitor.test_drift import NOW, monitor, seed
from tests.ui.conftest import VIEWPORT, Watch
from tests.ui.test_browser import shot


@pytest.mark.one_db
@pytest.mark.slow
def test_drift_monitor_page_draws_its_charts(server: LiveServer, project: ProjectKeys, store: Any,
                                             browser: Any) -> None:
    from playwright.sync_api import expect

    pid = project.project_id
    seed(store, pid, {"ui": {"topics": {"billing": 0.35, "cooking": 0.35, "travel": 0.3}}})
    m = monitor(store, pid, "ui", ["input_embedding", "input_topics", "input_length"])
    for hours in (2, 0):
        assert record_run(store, pid, m, now=NOW - timedelta(hours=hours))["status"] == "ok"
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/drift")
    expect(page.locator('tr[data-monitor="drift-ui"] [data-col="status"]')).to_have_text("drifted")
    page.get_by_role("link", name="drift-ui").click()
    expect(page.locator("#chart-drift-p canvas").first).to_be_visible()
    expect(page.locator("#chart-drift-stat canvas").first).to_be_visible()
    assert page.evaluate("window.podiumDriftCharts.length") == 2
    expect(page.locator('tr[data-feature="input_embedding"]')).to_contain_text("drifted")
    expect(page.get_by_test_id("drift-topic").first).to_be_visible()
    shot(page, "drift", full_page=True)
    page.select_option("#drift-stat", "input_length_wasserstein")
    expect(page).to_have_url(f"{server.url}/drift/{m['id']}?stat=input_length_wasserstein")
    expect(page.locator("#chart-drift-stat canvas").first).to_be_visible()
    assert watch.errors == [] and watch.dialogs == []
    ctx.close()

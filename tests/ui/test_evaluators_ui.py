"""Evaluators in a real browser: create an online evaluation rule with the form (the scorer
picker), watch the server's embedded worker score arriving traces, and read the rule's page
(stats, chart, recent scores). Server-side checks of every form are in
tests/monitor/test_online_eval.py."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"  # read at import (podium_home clears PODIUM_*)


def _ingest(server: LiveServer, n: int) -> None:
    t = "2026-03-01T12:00:00Z"
    batch = [{"type": "span", "body": {"id": f"root-{i}", "trace_id": f"ui-{i}", "name": "answer", "start_time": t,
                                       "end_time": t, "environment": "prod", "input": {"question": "refund?"},
                                       "output": "Your refund is on its way" if i % 2 else "No idea"}}
             for i in range(n)]
    with server.client() as c:
        assert c.post("/api/v1/ingest", json={"batch": batch}).status_code == 200


@pytest.mark.one_db
@pytest.mark.integration
def test_create_an_evaluator_and_watch_it_score(server: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/evaluators")
    page.get_by_label("Name", exact=True).fill("refunds")
    page.locator("#ev-environment").fill("prod")
    page.locator("#ev-scorer").select_option("type:icontains")
    page.locator("#ev-params").fill('{"value": "refund"}')
    page.locator("#ev-delay").fill("0")
    page.get_by_role("button", name="Create evaluator").click()
    expect(page.get_by_test_id("eval-notice")).to_contain_text("judges traces that arrive from now on")
    detail = page.url

    _ingest(server, 6)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page.goto(detail)
        if page.get_by_test_id("eval-evaluated").inner_text() == "6":
            break
        time.sleep(0.5)
    expect(page.get_by_test_id("eval-evaluated")).to_have_text("6")
    expect(page.get_by_test_id("eval-backlog")).to_have_text("0")
    expect(page.locator("#chart-evaluator canvas")).to_have_count(1)  # uPlot drew the per-minute chart
    expect(page.locator("section[aria-labelledby=recent-title] tbody tr")).to_have_count(6)
    if TAKE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "evaluator.png"), full_page=True)

    page.goto(server.url + "/evaluators")
    row = page.locator('tr[data-rule="refunds"]')
    expect(row.locator('[data-col="evaluated"]')).to_have_text("6")
    if TAKE_SHOTS:
        page.screenshot(path=str(SHOTS / "evaluators.png"), full_page=True)
    page.locator('tr[data-rule="refunds"] a').click()
    page.get_by_test_id("eval-toggle").click()
    expect(page.get_by_test_id("eval-toggle")).to_have_text("Enable")
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()

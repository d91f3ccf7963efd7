"""Canary deployments in a real browser: the Deployments nav link, the list, a canary's page
with its steps, weights, latest gate check and audit trail, *Roll back* by hand, and the link
from the registry's model page; no page errors, no inline scripts."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from podium.monitor.canary import CanaryController, CanaryJob
from tests.conftest import LiveServer
from tests.monitor.test_canary import ALIAS, setup, traffic
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = pytest.mark.integration
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"


@pytest.mark.one_db
def test_deployments_in_the_browser(server: LiveServer, browser: Any) -> None:
    st, pid = server.store, server.keys.project_id
    setup(st, pid)
    ctl = CanaryController(st)
    c = ctl.start(pid, gateway_alias=ALIAS, model="bot", baseline_version=1, candidate_version=2,
                  step_duration_s=600, min_requests=5, actor="alice")
    at = c["step_started_at"] + timedelta(seconds=1)
    traffic(st, pid, at, 1, 30, score=0.8)
    traffic(st, pid, at, 2, 8, score=0.79)
    CanaryJob(st, check_every_s=0.0).run_once()
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/")
    page.click("nav >> text=Deployments")
    page.wait_for_url("**/deployments")
    row = page.locator(f"[data-canary='{c['id']}']")
    assert "running" in row.inner_text() and "5%" in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_url(f"**/deployments/{c['id']}")
    assert "5% (now)" in page.locator("[data-testid=canary-steps]").inner_text()
    assert "95%" in page.locator("[data-testid=canary-weights]").inner_text()
    assert page.locator("[data-testid=check-verdict]").inner_text() == "pass"
    gates = page.locator("[data-testid=canary-gates]").inner_text()
    assert "error_rate" in gates and "score:helpful" in gates
    if TAKE_SHOTS:
        page.screenshot(path=str(Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "canary.png"),
                        full_page=True)
    page.fill("form[action$='/rollback'] input[name=reason]", "looks off")
    page.click("text=Roll back")
    page.wait_for_url("**?done=rollback")
    assert page.locator("[data-testid=canary-status]").inner_text() == "rolled back"
    assert "looks off" in page.locator("[data-testid=canary-events]").inner_text()
    page.goto(server.url + "/registry/bot")
    page.click("[data-testid=model-deployments]")
    page.wait_for_url("**/deployments?model=bot")
    assert page.locator(f"[data-canary='{c['id']}']").is_visible()
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()

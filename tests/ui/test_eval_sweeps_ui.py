"""Eval sweeps in a real browser: the Sweeps nav link and list, a sweep's page with the score-vs-
cost scatter drawn by uPlot (hovering a point shows its configuration; dominated points in their
own grey series), the front's table with the paired-bootstrap comparison and projected monthly
costs, and the Decide form showing the chosen trial with its evidence; no page errors, no
dialogs (a configuration carrying markup stays text)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.server.test_eval_sweeps import record, trial
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = pytest.mark.integration


@pytest.mark.one_db
def test_eval_sweep_pages_in_the_browser(server: LiveServer, browser: Any) -> None:
    with server.client() as c:
        e_best, e_close, e_bad = (record(c, "best", [1.0] * 30), record(c, "close", [1.0] * 29 + [0.0]),
                                  record(c, "bad", [1.0, 0.0] * 15))
    repo, pid = server.store.eval_sweeps, server.keys.project_id
    sweep = repo.create(pid, name="capitals sweep", suite={"name": "capitals", "path": "suite.yaml"},
                        objectives=["score", "cost_per_1k", "p95_ms"], search={"method": "grid"}, budget_usd=5.0)
    repo.upsert_trials(pid, sweep["id"], [
        trial(0, 1.0, 4.0, 800, model="big", exp=e_best),
        trial(1, 0.967, 1.0, 400, model="mid", exp=e_close, system_variant="<img src=x onerror=alert(1)>"),
        trial(2, 0.5, 0.2, 100, model="tiny", exp=e_bad),
        trial(3, 0.4, 3.0, 900, model="slow"),  # dominated by 1
    ])
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/")
    page.click("nav >> text=Sweeps")
    page.wait_for_url("**/eval-sweeps")
    assert "capitals" in page.locator(f"[data-sweep={sweep['id']}]").inner_text()
    page.click("text=capitals sweep")
    page.wait_for_url(f"**/eval-sweeps/{sweep['id']}")
    page.wait_for_function("() => window.podiumSweepChart")
    series = page.evaluate("window.podiumSweepChart.data.slice(1)")
    assert series == [[0.5, 0.967, None, 1.0], [None, None, 0.4, None]]  # by cost: 2, 1, 3 (dominated), 0
    # hover the dominated point: its configuration appears under the chart
    box = page.evaluate("""(() => { const u = window.podiumSweepChart, r = u.over.getBoundingClientRect();
        return [r.left + u.valToPos(3.0, 'x'), r.top + u.valToPos(0.4, 'y')]; })()""")
    page.mouse.move(box[0], box[1])
    page.wait_for_function("() => document.getElementById('sweep-hover').textContent.includes('slow')")
    assert "(dominated)" in page.locator("[data-testid=sweep-hover]").inner_text()
    assert page.locator("[data-testid=front-count]").inner_text() == "3"
    rows = page.locator("[data-testid=front-table] tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.trial)") == ["0", "1", "2"]
    vs = page.locator("[data-testid=front-table] [data-testid=vs-best]").all_inner_texts()
    assert vs[0] == "best" and vs[1].startswith("not significantly worse") and "significantly worse" in vs[2]
    assert all(f.startswith("$0.0000") for f in page.locator("[data-testid=forecast]").all_inner_texts())
    assert "<img src=x onerror=alert(1)>" in page.locator("[data-trial='1']").first.inner_text()
    # decide: the cheapest configuration not significantly worse than the best
    page.select_option("[data-testid=decide-form] select[name=rule]", "cheapest_not_worse")
    page.click("[data-testid=decide-form] button")
    page.wait_for_url("**rule=cheapest_not_worse**")
    got = page.locator("[data-testid=decision]").inner_text()
    assert "Trial 1" in got and "not significantly below the best (trial 0)" in got
    assert "eval sweeps promote" in got
    page.select_option("[data-testid=decide-form] select[name=rule]", "best_under_cost")
    page.fill("[data-testid=decide-form] input[name=max_cost_per_1k]", "0.1")
    page.click("[data-testid=decide-form] button")
    page.wait_for_url("**rule=best_under_cost**")
    assert "raise the limit" in page.locator("[data-testid=decision-error]").inner_text()
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()

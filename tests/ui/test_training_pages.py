"""Training runs in a real browser: the Training nav link and runs list, a run's page with its
loss and learning-rate charts drawn by uPlot and *Cancel run*, the compare page with both runs
(differing parameters highlighted, loss curves overlaid) and a sweep with its best trial marked;
no page errors, no dialogs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from podium.store import tables as t
from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = pytest.mark.integration
# Read at import: the autouse podium_home fixture clears PODIUM_* variables for each test.
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _seed(server: LiveServer) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    tr, pid = server.store.training, server.keys.project_id
    sweep = tr.create_sweep(pid, name="lr-search",
                            space={"training.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-4, "log": True}},
                            objective={"metric": "eval_loss", "direction": "minimize"})
    runs = []
    for i, lr in enumerate((1e-4, 3e-4)):
        run = tr.create_run(pid, method="sft", base_model="smollm2", name=f"lr-{lr:g}", sweep_id=sweep["id"], trial=i,
                            params={"training": {"learning_rate": lr, "max_steps": 20}, "lora": {"r": 8}},
                            hardware={"device": "cpu", "torch": "2.x"}, dataset={"name": "support-sft", "version": 1})
        tr.log_steps(pid, run["id"], [{"step": s, "loss": 2.5 - s * (0.03 + i * 0.02), "learning_rate": lr * (1 - s / 20),
                                       **({"eval_loss": 2.4 - s * 0.04} if s % 10 == 0 else {})}
                                      for s in range(1, 21)])
        runs.append(run)
    tr.update_run(pid, runs[0]["id"], {"status": "completed", "metrics": {"train_loss": 1.9, "eval_loss": 1.6},
                                       "artifacts": {"adapter_dir": "/runs/a/adapter"}, "duration_s": 8.4})
    trials = [{"number": 0, "value": 1.55, "run_id": runs[0]["id"], "state": "complete"},
              {"number": 1, "value": None, "run_id": runs[1]["id"], "state": "pruned"}]
    tr.update_sweep(pid, sweep["id"], {"status": "completed", "best_run_id": runs[0]["id"],
                                       "summary": {"metric": "eval_loss", "best": trials[0], "trials": trials}})
    return runs[0], runs[1], sweep


@pytest.mark.one_db
def test_training_pages_in_the_browser(server: LiveServer, browser: Any) -> None:
    done, running, sweep = _seed(server)
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/")
    page.click("nav >> text=Training")
    page.wait_for_url("**/training")
    assert page.locator("[data-testid=training-runs] tbody tr").count() == 2
    assert "completed" in page.locator(f"[data-run={done['id']}]").inner_text()
    # a run's page: both charts drawn by uPlot, the loss chart with train and eval loss
    page.click(f"[data-run={running['id']}] >> text=lr-0.0003")
    page.wait_for_url(f"**/training/{running['id']}")
    page.wait_for_function("() => window.podiumTrainingCharts && window.podiumTrainingCharts.length === 2")
    labels = page.evaluate("window.podiumTrainingCharts.map(u => u.series.slice(1).map(s => s.label))")
    assert labels == [["train loss", "eval loss"], ["learning rate"]]
    assert page.locator("[data-chart=loss] canvas").count() == 1
    assert page.locator("[data-testid=run-steps]").inner_text() == "20"
    assert "lora.r" in page.locator("[data-testid=run-params]").inner_text()
    # a running run's page follows it: new steps redraw the charts (training.js polls every 10 s)
    server.store.training.log_steps(server.keys.project_id, running["id"], [{"step": 21, "loss": 1.0}])
    page.evaluate("window.podiumTrainingPoll()")
    page.wait_for_function("() => document.querySelector('[data-testid=run-steps]').textContent === '21'")
    assert page.evaluate("window.podiumTrainingCharts[0].data[0].length") == 21
    if TAKE_SHOTS:
        page.screenshot(path=str(SHOTS / "training-run.png"), full_page=True)
    page.click("[data-testid=cancel-run]")
    page.wait_for_url("**?done=cancel")
    assert page.locator("text=cancelling").count() == 1 and page.locator("[data-testid=cancel-run]").count() == 0
    # compare: tick both runs on the list
    page.goto(server.url + "/training")
    page.check(f"[data-run={done['id']}] input[type=checkbox]")
    page.check(f"[data-run={running['id']}] input[type=checkbox]")
    page.click("[data-testid=compare-runs]")
    page.wait_for_url("**/training/compare?**")
    heads = page.locator("[data-testid=compare-runs-table] thead th[data-run]").all_inner_texts()
    assert heads == ["lr-0.0001", "lr-0.0003"]
    assert page.locator("tr.param-differs").evaluate_all("rows => rows.map(r => r.dataset.param)") == [
        "training.learning_rate"]
    page.wait_for_function("() => window.podiumTrainingCharts && window.podiumTrainingCharts.length === 2")
    overlaid = page.evaluate("window.podiumTrainingCharts[0].series.slice(1).map(s => s.label)")
    assert overlaid == ["lr-0.0001 loss", "lr-0.0001 eval", "lr-0.0003 loss", "lr-0.0003 eval"]
    if TAKE_SHOTS:
        page.screenshot(path=str(SHOTS / "training-compare.png"), full_page=True)
    # the sweep: trials with the searched parameter, the best one marked
    page.click(f"a[href='/training/{done['id']}']")
    page.click(f"a[href='/training/sweeps/{sweep['id']}']")
    page.wait_for_url(f"**/training/sweeps/{sweep['id']}")
    assert page.locator("tr[data-best=true]").get_attribute("data-run") == done["id"]
    assert "1.55" in page.locator("tr[data-best=true]").inner_text()  # the objective from the sweep's summary
    assert "training.learning_rate" in page.locator("[data-testid=sweep-trials] thead").inner_text()
    if TAKE_SHOTS:
        page.screenshot(path=str(SHOTS / "training-sweep.png"), full_page=True)
    page.click("main >> text=Sweeps")
    page.wait_for_url("**/training/sweeps")
    assert "1.55" in page.locator(f"[data-sweep={sweep['id']}]").inner_text()
    # a running run the trainer stopped reporting on (its process died?) is flagged
    with server.store.engine.begin() as c:
        c.execute(update(t.training_run).where(t.training_run.c.id == running["id"])
                  .values(updated_at=datetime.now(UTC) - timedelta(hours=1)))
    page.goto(server.url + "/training")
    assert "no report for" in page.locator(f"[data-run={running['id']}] [data-testid=run-stale]").inner_text()
    assert page.locator("[data-testid=run-stale]").count() == 1
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()

"""Starting an eval sweep from the UI, in a real browser: the Sweeps list's *New sweep* form (a pasted
suite and a space of two models x two temperatures) starts `podium eval sweep` on the server with a
key of its own; the sweep's page shows the trials as they end (polling while it runs) and the front
once it completed; the sweep's key is revoked when it ends. A form error stays on the form."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUITE = """description: capitals from the UI
prompts: ["Question {{n}}: what is the capital of France? One word."]
providers: [fake-mini]
defaultTest:
  assert: [{type: icontains, value: paris}]
tests:
  - vars: {n: 1}
  - vars: {n: 2}
  - vars: {n: 3}
  - vars: {n: 4}
"""


def behaviour(body: dict[str, Any]) -> Reply:
    n = int(re.findall(r"Question (\d+)", body["messages"][-1]["content"])[0])
    right = body["model"] == "gpt-4o" or (n % 2 == 0 and not body.get("temperature"))
    return Reply("Paris" if right else "Lyon", delay=0.05, prompt_tokens=20)


@pytest.mark.one_db
def test_start_a_sweep_from_the_ui_and_watch_it_run(server: LiveServer, browser: Any, upstream: FakeUpstream) -> None:
    for m in ("gpt-4o", "gpt-4o-mini"):
        upstream.respond(m, behaviour)
    with server.client() as c:
        for alias, model in (("fake-mini", "gpt-4o-mini"), ("fake-large", "gpt-4o")):
            c.put(f"/api/v1/gateway/models/{alias}", json={"deployments": [
                {"provider": "openai", "model": model, "api_base": upstream.base_url, "api_key": "k"}]}
                  ).raise_for_status()
    keys_before = {k.public_key for k in server.store.projects.list_keys(server.keys.project_id)}
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/eval-sweeps")
    page.click("[data-testid=new-sweep]")
    page.wait_for_url("**/eval-sweeps/new")
    # a form error: no suite and no dataset
    page.fill("#sw-models", "fake-mini")
    page.uncheck("input[name=scorer][value=icontains]")
    page.click("[data-testid=start-sweep]")
    assert "pick a dataset and a prompt, or paste a suite YAML" in page.locator("[data-testid=sweep-error]").inner_text()
    assert page.locator("#sw-models").input_value() == "fake-mini"  # the form keeps what was typed
    assert [e for e in watch.errors if "status of 400" not in e] == []  # the form's answer is a 400 page
    watch.errors.clear()
    page.fill("#sw-name", "capitals from the UI")
    page.fill("#sw-suite", SUITE)
    page.fill("#sw-models", "fake-mini, fake-large")
    page.fill("#sw-temp", "0, 0.7")
    page.click("[data-testid=start-sweep]")
    page.wait_for_url(re.compile(r".*/eval-sweeps/esw-[0-9a-f]+$"))
    sweep_id = page.url.rsplit("/", 1)[1]
    # live: the page refetches itself while the sweep runs, until it completed with all four trials
    page.wait_for_function("() => document.querySelectorAll('[data-testid=trials-table] tbody tr').length === 4 "
                           "&& !document.querySelector('#sweep-live[data-live]')", timeout=90_000)
    assert page.locator("h1 .badge").inner_text() == "completed"
    page.wait_for_function("() => window.podiumSweepChart && window.podiumSweepChart.data[0].length === 4")
    assert int(page.locator("[data-testid=front-count]").inner_text()) >= 1
    configs = page.locator("[data-testid=trials-table] tbody tr td:nth-child(2)").all_inner_texts()
    assert sorted(configs) == sorted(["fake-mini temperature=0", "fake-mini temperature=0.7",
                                      "fake-large temperature=0", "fake-large temperature=0.7"])
    sweep = server.store.eval_sweeps.get(server.keys.project_id, sweep_id)
    assert sweep["status"] == "completed" and sweep["created_by"] and sweep["suite"]["started_from"] == "ui"
    assert sweep["space"]["params"] == {"temperature": [0.0, 0.7]}
    # the sweep's own key: role member, named for the sweep, revoked now that it ended
    # (the child records the end, then exits; the server revokes its key when it has exited)
    deadline = time.monotonic() + 30
    while True:
        new = [k for k in server.store.projects.list_keys(server.keys.project_id) if k.public_key not in keys_before]
        if (new and new[0].revoked_at is not None) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(new) == 1 and new[0].role == "member" and sweep_id in (new[0].note or "")
    assert new[0].revoked_at is not None
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()


@pytest.mark.one_db
def test_a_sweep_that_cannot_run_is_marked_failed_with_its_reason(server: LiveServer, browser: Any) -> None:
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    page.goto(server.url + "/eval-sweeps/new")
    page.fill("#sw-suite", SUITE)
    page.fill("#sw-models", "no-such-model")
    page.click("[data-testid=start-sweep]")
    page.wait_for_url(re.compile(r".*/eval-sweeps/esw-[0-9a-f]+$"))
    page.wait_for_selector("[data-testid=sweep-reason]", timeout=60_000)
    assert page.locator("h1 .badge").inner_text() == "failed"
    assert "no-such-model" in page.locator("[data-testid=sweep-reason]").inner_text()
    ctx.close()

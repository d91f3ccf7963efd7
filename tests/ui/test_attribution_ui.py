"""The trace page's Attribution panel in Chromium (local mode: the no-login admin): a RAG trace
shows the panel with its form; computing leave-one-out ranks the planted chunk first with a bar
and its weight; no script errors (the form is a plain POST: no inline script under the CSP)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.rag.test_attribution import _client, _ingest_rag_trace
from tests.ui.conftest import VIEWPORT, Watch


@pytest.mark.one_db
def test_attribution_panel_in_the_browser(server: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    with _client(server) as c:
        _ingest_rag_trace(c, "attr-ui", at=2)
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    page.set_default_timeout(300_000)  # the model runs on a busy CPU
    watch = Watch(page)
    page.goto(server.url + "/traces/attr-ui")
    panel = page.get_by_test_id("attribution")
    expect(panel.get_by_role("heading", name="Attribution")).to_be_visible()
    expect(page.get_by_test_id("attribution-empty")).to_be_visible()
    page.select_option('select[name="method"]', "leave-one-out")
    page.get_by_role("button", name="Attribute the answer").click()
    page.wait_for_url("**/traces/attr-ui#attribution")
    run = page.get_by_test_id("attribution-run").first
    expect(run).to_contain_text("leave-one-out")
    expect(run).to_contain_text("5 passes")
    first = page.get_by_test_id("attribution-chunks").locator("tbody tr").first
    expect(first).to_have_attribute("data-chunk", "doc2.txt#0")
    expect(first).to_contain_text("Zorvian Bank was founded")
    width = first.locator(".meter > span").get_attribute("style") or ""
    assert "width: 100" in width, width
    stored = server.store.attributions.for_trace(server.keys.project_id, "attr-ui")
    assert len(stored) == 1 and stored[0]["top_chunk"] == "doc2.txt#0"
    assert watch.errors == [] and watch.dialogs == []
    ctx.close()

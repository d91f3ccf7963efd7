"""The prompt playground answers from a knowledge collection: a version bound to a collection
(``config.retrieval``) preselects it, the user sets top k and the search mode, and the answer
shows its ``[n]`` citations resolved to documents (the fake upstream answers; real HTTP)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ProjectKeys
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.gateway.openai_app import serve
from tests.rag.test_api import _seed
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = pytest.mark.integration


@pytest.mark.one_db
def test_playground_answers_with_citations(store: Any, project: ProjectKeys, upstream: FakeUpstream,
                                           podium_home: Path, browser: Any) -> None:
    from playwright.sync_api import expect

    srv = serve(store, project, upstream, podium_home)
    try:
        with srv.client() as c:
            _seed(c)
            r = c.post("/api/v1/prompts", json={
                "name": "kb-qa", "type": "chat",
                "prompt": [{"role": "system", "content": "Answer from these and cite [n]:\n{{context}}"},
                           {"role": "user", "content": "{{question}}"}],
                "config": {"model": "fake", "retrieval": {"collection": "kb", "top_k": 3, "mode": "hybrid"}},
                "labels": ["production"]})
            assert r.status_code in (200, 201), r.text
            assert c.post("/api/v1/collections", json={"name": "other"}).status_code == 201
        upstream.script("fake-a", Reply("Paris is the capital of France [1]. Also [9]."))

        ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
        page = ctx.new_page()
        watch = Watch(page)
        page.goto(srv.url + "/prompts/kb-qa/versions/1/run")
        # the bound collection is preselected, with the config's top k and mode as defaults
        expect(page.get_by_label("Collection", exact=True)).to_have_value("kb")
        expect(page.get_by_label("Search")).to_have_value("hybrid")
        expect(page.get_by_label("Top k")).to_have_attribute("placeholder", "3")
        page.get_by_label("question", exact=True).fill("What is the capital of France?")
        page.get_by_label("Model alias").select_option("fake")
        page.get_by_label("Top k").fill("2")
        page.get_by_label("Search").select_option("keyword")
        page.get_by_role("button", name="Run").click()

        result = page.get_by_test_id("run-result")
        expect(result.locator(".msg.role-assistant")).to_contain_text("Paris is the capital of France [1]")
        cites = page.get_by_test_id("citation")
        expect(cites).to_have_count(2)
        expect(cites.nth(0)).to_contain_text("[1] paris")
        expect(cites.nth(0)).to_contain_text("paris.txt#0")
        expect(cites.nth(1)).to_contain_text("names no passage")
        expect(page.get_by_test_id("run-citations")).to_contain_text("kb v1, keyword, top 2")

        sent = upstream.bodies("fake-a")[-1]
        assert sent["messages"][0]["content"].startswith("Answer from these and cite [n]:\n[1] (paris)\n"
                                                         "Paris is the capital of France.")
        assert sent["messages"][1] == {"role": "user", "content": "What is the capital of France?"}
        href = page.get_by_test_id("run-trace").get_attribute("href") or ""
        assert re.search(r"/traces/[0-9a-f]{32}", href)

        # "none" runs the prompt as it is (no search: the context variable is the user's text)
        upstream.script("fake-a", Reply("Plain."))
        page.get_by_label("Collection", exact=True).select_option("")
        page.locator('textarea[name="var:context"]').fill("my own context")
        page.get_by_role("button", name="Run").click()
        expect(result.locator(".msg.role-assistant")).to_contain_text("Plain.")
        expect(page.get_by_test_id("run-citations")).to_have_count(0)
        assert upstream.bodies("fake-a")[-1]["messages"][0]["content"].endswith("\nmy own context")
        assert not watch.errors, watch.errors
        ctx.close()
    finally:
        srv.thread.stop()

"""The model registry in a real browser: the Models nav link, a model's page where *Roll back*
moves champion back, and a version's lineage chain; no page errors, no inline scripts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from podium.core.datasets import DatasetItem
from podium.registry.registry import ModelRegistry
from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = pytest.mark.integration
# Read at import: the autouse podium_home fixture clears PODIUM_* variables for each test.
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"


@pytest.mark.one_db
def test_registry_in_the_browser(server: LiveServer, browser: Any, tmp_path: Path) -> None:
    st, pid = server.store, server.keys.project_id
    reg = ModelRegistry(st, tmp_path)
    st.evals.create_dataset(pid, "sft", items=[DatasetItem(id="a", input="q", expected="a")])
    reg.register(pid, "bot", artifact="hf://o/bot-1", kind="adapter", dataset="sft@1", training_run_id="run-7")
    reg.register(pid, "bot", artifact="hf://o/bot-2", kind="gguf", base_model="registry:/bot@1")
    reg.set_alias(pid, "bot", "champion", 1)
    reg.set_alias(pid, "bot", "champion", 2)
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/")
    page.click("nav >> text=Models")
    page.wait_for_url("**/registry")
    assert page.locator("[data-model=bot]").inner_text().count("champion → v2") == 1
    page.click("[data-model=bot] >> text=bot")
    page.fill("[data-alias=champion] form[action$='/rollback'] input[name=comment]", "regressed")
    page.click("[data-alias=champion] >> text=Roll back")
    page.wait_for_url("**/registry/bot?done=rollback")
    assert "v1" in page.locator("[data-alias=champion]").inner_text()
    assert "regressed" in page.locator("[data-testid=registry-history]").inner_text()
    page.goto(server.url + "/registry/bot/versions/2")
    kinds = page.locator(".lineage-card").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["base", "version", "traces"]
    page.click(".lineage-card[data-kind=base] a")
    page.wait_for_url("**/registry/bot/versions/1")
    assert page.locator(".lineage-card[data-kind=dataset]").is_visible()
    if TAKE_SHOTS:
        page.screenshot(path=str(Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "registry-version.png"),
                        full_page=True)
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()

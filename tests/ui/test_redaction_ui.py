"""Settings › Redaction in Chromium (local mode: the no-login admin): save rules as YAML with the
fail-closed switch, a refused rule with the API's message naming it, and the dry run on a sample;
no script errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch


@pytest.mark.one_db
def test_redaction_settings_in_the_browser(server: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/settings")
    page.get_by_role("link", name="Redaction").click()
    expect(page.get_by_role("heading", name="Redaction before storage")).to_be_visible()
    page.fill("#redaction-rules", "rules:\n  - preset: email\n  - pattern: '('\n")
    page.get_by_role("button", name="Save rules").click()
    expect(page.get_by_test_id("redaction-error")).to_contain_text("rules[1].pattern")
    page.fill("#redaction-rules", "rules:\n  - preset: email\n  - path: metadata.password\n")
    page.check('input[name="fail_closed"]')
    page.get_by_role("button", name="Save rules").click()
    expect(page.get_by_test_id("redaction-saved")).to_be_visible()
    stored = server.store.redaction.get(server.keys.project_id)
    assert stored["fail_closed"] is True and stored["rules"][1] == {"path": "metadata.password"}
    expect(page.locator("#redaction-rules")).to_contain_text("metadata.password")
    page.fill("#redaction-sample", "write to ana@example.com")
    page.get_by_role("button", name="Try on the sample").click()
    expect(page.get_by_test_id("redaction-result")).to_contain_text("write to [REDACTED:email]")
    # the refused save answers 400 (the page with the error): Chromium logs that status, nothing else
    assert [e for e in watch.errors if "status of 400" not in e] == [] and watch.dialogs == []
    ctx.close()

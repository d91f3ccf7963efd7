"""People in a real browser: sign in with a password, invite from Settings > Members, forms of other
pages (plain and HTMX) carry the session's CSRF token, the account page signs out everywhere; no
CSP violation, no console error."""

from __future__ import annotations

from typing import Any

import pytest

from podium.governance import users
from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch

pytestmark = [pytest.mark.integration, pytest.mark.one_db, pytest.mark.slow, pytest.mark.timeout(400)]

PW = "correct horse battery staple"
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => { window.__csp.push(e.violatedDirective); });
"""


def test_sign_in_invite_and_sign_out_everywhere(server: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    users.create_user(server.store, "ana@example.com", password=PW, role="owner", project_id=server.keys.project_id)
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(LISTEN)
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    watch = Watch(page)
    try:
        page.goto(server.url + "/login?next=/settings/members")
        page.fill("#email", "ana@example.com")
        page.fill("#password", "wrong password")
        page.click("form[action='/login/password'] button")
        expect(page.locator("#login-error")).to_contain_text("wrong email or password")
        assert [e for e in watch.errors if "401" in e]  # the refused sign-in answered 401 (and said why)
        watch.errors.clear()
        page.fill("#email", "ana@example.com")
        page.fill("#password", PW)
        page.click("form[action='/login/password'] button")
        page.wait_for_url("**/settings/members")
        expect(page.locator(".who")).to_contain_text("ana@example.com")
        expect(page.locator(".who")).to_contain_text("owner")
        cookie = next(c for c in ctx.cookies() if c["name"] == "podium_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        # Invite (a form of this page: its own csrf_token field).
        page.fill("#inv-email", "bo@example.com")
        page.select_option("#inv-role", "viewer")
        page.click("form[action='/settings/members/invite'] button")
        expect(page.locator("#invite-link")).to_contain_text("/invite/")
        expect(page.locator("table.invitations")).to_contain_text("bo@example.com")
        # A plain form of another page (no csrf field in its template): people.js adds the token.
        page.goto(server.url + "/settings")
        page.fill("#ps-labels", "production")
        page.click("form[action='/settings/prompts'] button")
        expect(page.locator("#prompt-settings")).to_contain_text("production")
        # An HTMX form: the token travels in the hx-headers of <body>.
        page.fill("#key-note", "made by ana")
        page.click("form[action='/settings/keys'] button")
        expect(page.locator("#keys")).to_contain_text("made by ana")
        # The account page: sign out everywhere.
        page.goto(server.url + "/account")
        expect(page.locator("h2#me-title")).to_have_text("ana@example.com")
        page.click("form[action='/account/sessions/revoke'] button")
        page.wait_for_url("**/login?**")
        expect(page.locator(".alert.warn")).to_contain_text("signed out of")
        assert page.evaluate("window.__csp") == []
        assert not watch.errors, watch.errors
    finally:
        ctx.close()
    ana = server.store.users.by_email("ana@example.com")
    assert ana is not None and all(s.revoked_at is not None for s in server.store.users.list_sessions(ana.id))

"""The UI and the API docs under the Content-Security-Policy, in a real browser.

Issue 16 item 7. Chromium loads the main pages (and the Swagger UI page) with the server's CSP
in force, and the test listens for ``securitypolicyviolation`` events and console errors: none
may be reported. A control injects an inline script to prove the policy is live, and every
request that leaves the server is recorded (the docs page must work offline).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch
from tests.ui.seed import seed, seed_prompts

pytestmark = [pytest.mark.integration, pytest.mark.one_db]

LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sourceFile || ""));
});
"""

PAGES = ["/", "/traces", "/traces/tr-paris", "/sessions", "/prompts", "/datasets", "/dashboards", "/evaluators",
         "/annotate", "/guardrails", "/drift", "/alerts", "/training", "/registry", "/settings"]


def test_pages_load_with_no_csp_violation(server: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    with server.client() as c:
        seed(c)
        seed_prompts(c)
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(LISTEN)
    page = ctx.new_page()
    page.set_default_timeout(90_000)  # two shared cores: the first guardrails page loads its scanners
    watch = Watch(page)
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((server.url, "data:")) else None)
    try:
        for path in PAGES:
            resp = page.goto(server.url + path)
            assert resp is not None and resp.status == 200, (path, resp and resp.status)
            assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
            page.wait_for_load_state("networkidle")
            assert page.evaluate("window.__csp") == [], (path, page.evaluate("window.__csp"))
        # HTMX swaps work under the policy: filter the traces list (a live request + swap).
        page.goto(server.url + "/traces")
        page.select_option("#f-status", "error")
        expect(page.locator("tr.trace-row")).to_have_count(1)
        expect(page.locator('tr[data-trace-id="tr-fail"]')).to_be_visible()
        # The control: an inline script is refused and reported.
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.textContent = 'window.__ran = 1'; document.body.appendChild(s); }""")
        page.wait_for_function("() => window.__csp.length > 0")
        assert page.evaluate("window.__ran") is None
        assert "script-src" in page.evaluate("window.__csp")[0]
        watch.errors = [e for e in watch.errors if "Content Security Policy" not in e]  # the control's own
        assert watch.errors == [] and watch.dialogs == []
        assert outside == []
    finally:
        ctx.close()


def test_api_docs_render_offline_under_the_policy(server: LiveServer, browser: Any) -> None:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.add_init_script(LISTEN)
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    watch = Watch(page)
    outside: list[str] = []

    def offline(route: Any) -> None:
        if route.request.url.startswith((server.url, "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    try:
        resp = page.goto(server.url + "/api/v1/docs")
        assert resp is not None and resp.status == 200
        page.wait_for_selector(".swagger-ui .opblock")  # the operations are drawn
        page.locator(".opblock-summary-path", has_text="/api/v1/traces/{trace_id}").first.wait_for()
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__csp") == [], page.evaluate("window.__csp")
        assert outside == [] and watch.errors == [], (outside, watch.errors)
    finally:
        ctx.close()

"""The web UI in a real browser: Debian's chromium driven by Playwright against a live server.

Needs /usr/bin/chromium (`bash scripts/browser.sh`) and the UI's vendor files
(`bash scripts/ui-assets.sh`); `make setup` runs both. With PODIUM_SCREENSHOTS=1 each page
is saved under docs/screenshots/ (`make screenshots`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ProjectKeys, ServerThread
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.ui.conftest import VIEWPORT, Watch
from tests.ui.seed import seed, seed_evals, seed_prompts, seed_wide_trace

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
# Read at import: the autouse podium_home fixture clears PODIUM_* variables for each test.
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"


def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    if TAKE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture
def seeded(server: LiveServer) -> LiveServer:
    with server.client() as c:
        seed(c)
    return server


def test_find_inspect_and_score_a_trace(seeded: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    url = seeded.url
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = ctx.new_page()
    watch = Watch(page)

    # Dashboard: charts drawn, skip link first in the tab order.
    page.goto(url + "/?range=24h")
    expect(page.locator("#chart-volume canvas").first).to_be_visible()
    expect(page.locator("#chart-models canvas").first).to_be_visible()
    expect(page.get_by_test_id("total-traces")).to_have_text("5")
    shot(page, "dashboard", full_page=True)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # Traces: filter, search; the filters land in the URL.
    page.goto(url + "/traces")
    rows = page.locator("tr.trace-row")
    expect(rows).to_have_count(5)
    shot(page, "traces")
    page.select_option("#f-status", "error")
    expect(rows).to_have_count(1)
    expect(page.locator('tr[data-trace-id="tr-fail"]')).to_be_visible()
    assert "status=error" in page.url and "user_id=" not in page.url  # only what is set goes in the URL
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(5)
    page.keyboard.press("/")
    page.keyboard.type("qa-bot")
    expect(rows).to_have_count(3)
    assert "q=qa-bot" in page.url
    page.get_by_text("More filters").click()
    page.get_by_label("User id", exact=True).fill("alice")
    page.get_by_role("button", name="Apply filters").click()
    expect(rows).to_have_count(2)
    assert "user_id=alice" in page.url
    page.reload()  # the URL alone restores the filtered list
    expect(rows).to_have_count(2)
    expect(page.locator("#f-q")).to_have_value("qa-bot")

    # Open a trace; expand spans with the mouse and the keyboard.
    page.click('tr[data-trace-id="tr-paris"] td.name a')
    expect(page).to_have_url(re.compile(r"/traces/tr-paris$"))
    root = page.locator('li[data-span-id="tr-paris-root"]')
    expect(root).to_have_attribute("aria-expanded", "true")  # a small trace opens fully expanded
    expect(page.locator('li[data-span-id="tr-paris-tool"]')).to_be_visible()
    root.locator(".twisty").click()  # collapse, then expand again (lazily, one level)
    expect(root).to_have_attribute("aria-expanded", "false")
    expect(page.locator('li[data-span-id="tr-paris-llm"]')).to_have_count(0)
    root.locator(".twisty").click()
    expect(root).to_have_attribute("aria-expanded", "true")
    llm = page.locator('li[data-span-id="tr-paris-llm"]')
    expect(llm).to_be_visible()
    expect(page.locator('li[data-span-id="tr-paris-retrieve"]')).to_be_visible()
    llm.click()
    detail = page.locator("#span-detail")
    expect(detail.locator(".msg.role-system")).to_contain_text("geography questions")
    expect(detail.locator(".msg.role-assistant")).to_contain_text("Paris.")
    expect(detail).to_contain_text("qa-prompt")
    assert "span=tr-paris-llm" in page.url
    page.keyboard.press("ArrowRight")  # expand the focused generation span
    tool = page.locator('li[data-span-id="tr-paris-tool"]')
    expect(tool).to_be_visible()
    expect(tool).to_have_attribute("aria-level", "3")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(detail).to_contain_text("lookup-tool")
    page.keyboard.press("ArrowLeft")  # to the parent
    page.keyboard.press("ArrowLeft")  # collapse it
    expect(tool).to_have_count(0)
    page.keyboard.press("Enter")
    expect(detail.locator(".msg.role-user")).to_contain_text("capital of France")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "trace")

    # Copy an id.
    page.locator('.trace-head button[data-copy="tr-paris"]').click()
    expect(page.locator("#toast")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "tr-paris"

    # Scores by hand: thumbs up on the trace, a number with a comment on the span.
    page.locator("#trace-score").get_by_role("button", name="Thumbs up").click()
    expect(page.locator("#scores")).to_contain_text("thumbs up")
    form = page.locator("#span-score")
    form.get_by_label("Type").select_option("numeric")
    form.get_by_label("Name").fill("correctness")
    form.get_by_label("Value").fill("0.75")
    form.get_by_label("Comment (optional)").fill("right city, terse")
    form.get_by_role("button", name="Save score").click()
    expect(page.locator("#span-scores")).to_contain_text("0.75")
    expect(page.locator("#scores")).to_contain_text("on span tr-paris-llm")  # the trace's list refreshed
    page.locator("#scores-title").scroll_into_view_if_needed()
    shot(page, "trace-scores")
    with seeded.client() as api:
        got = api.get("/api/v1/scores", params={"trace_id": "tr-paris", "source": "human"}).json()["data"]
    assert {(s["name"], s["value"], s["span_id"]) for s in got} == {
        ("quality", True, None), ("correctness", 0.75, "tr-paris-llm")}
    assert [s["comment"] for s in got if s["name"] == "correctness"] == ["right city, terse"]

    # Hostile content renders as text; a megabyte payload renders truncated.
    page.goto(url + "/traces/tr-xss")
    page.locator('li[data-span-id="xss-root"]').click()
    expect(page.locator("#span-detail")).to_contain_text("xss-input")
    page.goto(url + "/traces", wait_until="load")
    t0 = time.perf_counter()
    page.goto(url + "/traces/tr-big")
    page.locator('li[data-span-id="big-root"]').click()
    expect(page.locator("#span-detail")).to_contain_text("more characters")
    big_s = time.perf_counter() - t0
    assert big_s < 3, big_s

    # Sessions, users, settings.
    page.goto(url + "/sessions")
    shot(page, "sessions")
    page.get_by_role("link", name="chat-1").first.click()
    expect(page.locator(".turn")).to_have_count(2)
    shot(page, "session")
    page.goto(url + "/users")
    shot(page, "users")
    page.get_by_role("link", name="alice", exact=True).first.click()
    expect(page.get_by_test_id("user-spend")).not_to_have_text("$0")
    shot(page, "user")
    page.goto(url + "/settings")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_label("Note").fill("grafana")
    page.get_by_role("button", name="Create key").click()
    reveal = page.locator("#new-key")
    expect(reveal).to_contain_text("shown only this once")
    secret = reveal.get_by_test_id("new-secret").locator("code").inner_text()
    assert secret.startswith("sk-pd-")
    shot(page, "settings")
    public = reveal.locator("code").first.inner_text()
    page.locator(f'tr[data-public-key="{public}"]').get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.locator(f'tr[data-public-key="{public}"]')).to_contain_text("revoked")
    assert any(d.startswith("confirm: Revoke") for d in watch.dialogs)

    # Unknown pages get the UI's 404.
    resp = page.goto(url + "/no-such-page")
    assert resp is not None and resp.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()

    unexpected = [e for e in watch.errors if "status of 404" not in e]
    assert not unexpected, unexpected
    assert [d for d in watch.dialogs if not d.startswith("confirm: Revoke")] == []
    ctx.close()


def _luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_color_schemes_stay_readable(seeded: LiveServer, browser: Any, scheme: str) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, color_scheme=scheme)
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(seeded.url + "/traces/tr-paris?span=tr-paris-llm")
    expect(page.locator("#span-detail .msg.role-user")).to_be_visible()
    style = page.evaluate("""() => {
        const s = (sel, prop) => getComputedStyle(document.querySelector(sel))[prop];
        return {
          bg: s('body', 'backgroundColor'), fg: s('body', 'color'),
          panel: s('.card', 'backgroundColor'), muted: s('.muted', 'color'),
          user: s('.msg.role-user', 'backgroundColor'), userText: s('.msg.role-user .msg-text', 'color'),
          link: s('.crumbs a', 'color'),
        };
    }""")
    dark = _luminance(style["bg"]) < 0.1
    assert dark == (scheme == "dark"), style
    assert _contrast(style["fg"], style["bg"]) >= 7, style
    assert _contrast(style["muted"], style["panel"]) >= 4.5, style
    assert _contrast(style["userText"], style["user"]) >= 7, style
    assert _contrast(style["link"], style["panel"]) >= 4.5, style
    if scheme == "dark":
        shot(page, "trace-dark")
        page.goto(seeded.url + "/?range=24h")
        expect(page.locator("#chart-volume canvas").first).to_be_visible()
        shot(page, "dashboard-dark")
    assert not watch.errors and not watch.dialogs
    ctx.close()


def test_wide_trace_opens_fast_in_the_browser(server: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    n = 100_000
    seed_wide_trace(server.store, server.keys.project_id, "wide", n, roots=10)
    # Server side: the page renders only the top-level spans, and a page of children at a time.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.get("/traces/wide")
        t0 = time.perf_counter()
        r = c.get("/traces/wide")
        server_s = time.perf_counter() - t0
        assert r.status_code == 200 and r.text.count('role="treeitem"') == 10
        t0 = time.perf_counter()
        kids = c.get("/traces/wide/children", params={"parent_id": "s3", "level": 2, "total": 9999})
        kids_s = time.perf_counter() - t0
        assert kids.text.count('role="treeitem"') == 100 and "9,899 left" in kids.text
    assert server_s < 1.0 and kids_s < 1.0, (server_s, kids_s)
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(server.url + "/traces")  # warm the connection and the browser cache
    t0 = time.perf_counter()
    page.goto(server.url + "/traces/wide")
    items = page.locator('li[role="treeitem"]')
    expect(items).to_have_count(10)
    open_s = time.perf_counter() - t0
    nav_ms = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    t0 = time.perf_counter()
    page.locator('li[data-span-id="s0"] .twisty').click()
    expect(items).to_have_count(110)
    expand_s = time.perf_counter() - t0
    shot(page, "trace-100k")
    t0 = time.perf_counter()
    page.get_by_role("button", name=re.compile(r"Load more \(9,899 left\)")).click()
    expect(items).to_have_count(210)
    more_s = time.perf_counter() - t0
    print(f"\n{n:,}-span trace: server renders the page in {server_s * 1000:.0f} ms and 100 children in "
          f"{kids_s * 1000:.0f} ms; chromium opens it in {open_s * 1000:.0f} ms (DOMContentLoaded "
          f"{nav_ms:.0f} ms), expands 100 of 9,999 children in {expand_s * 1000:.0f} ms, the next 100 in "
          f"{more_s * 1000:.0f} ms")
    assert open_s < 2.0, f"opening a {n:,}-span trace took {open_s:.2f} s"
    assert expand_s < 2.0 and more_s < 2.0
    ctx.close()


@pytest.fixture
def with_gateway(store: Any, project: ProjectKeys, upstream: FakeUpstream, podium_home: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """A server whose gateway.yaml (in PODIUM_HOME) declares ``fake``, a real HTTP fake upstream;
    seeded with traces and prompts."""
    from podium.config import Settings
    from podium.server.app import create_app

    monkeypatch.setenv("FAKE_KEY", "sk-upstream-SECRET")
    podium_home.mkdir(parents=True, exist_ok=True)
    (podium_home / "gateway.yaml").write_text(f"""
models:
  - name: fake
    description: a fake OpenAI-compatible upstream
    deployments:
      - {{provider: openai, model: fake-a, api_base: "{upstream.base_url}", api_key: env:FAKE_KEY}}
    fallbacks: [local]
""")
    th = ServerThread(create_app(Settings(), store=store)).start()
    srv = LiveServer(th.url, store, project, th.server.config.app, th)
    with srv.client() as c:
        seed(c)
        seed_prompts(c)
        assert c.put("/api/v1/prices/fake-a", json={"input_per_million": "1", "output_per_million": "2"}
                     ).status_code == 200
        assert c.put("/api/v1/gateway/limits", json={"rpm": 600, "budget_daily": 5}).status_code == 200
        bot = store.projects.create_key(project.project_id, role="gateway", note="ci-bot").key.public_key
        assert c.put(f"/api/v1/gateway/keys/{bot}", json={"limits": {"rpm": 60, "budget_monthly": 20},
                                                           "models": ["fake"]}).status_code == 200
    yield srv
    th.stop()


def test_prompts_diff_move_and_playground(with_gateway: LiveServer, browser: Any, upstream: FakeUpstream) -> None:
    from playwright.sync_api import expect

    srv = with_gateway
    url = srv.url
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)

    # The list, then a prompt: labels (an A/B split), versions with their calls, charts.
    page.goto(url + "/prompts")
    expect(page.locator("tr[data-prompt]")).to_have_count(2)
    shot(page, "prompts")
    page.get_by_role("link", name="qa-prompt", exact=True).click()
    expect(page).to_have_url(url + "/prompts/qa-prompt")
    expect(page.locator("#chart-pv-calls canvas").first).to_be_visible()
    expect(page.locator('tr[data-label="canary"]')).to_contain_text("v2 90%")
    shot(page, "prompt", full_page=True)

    # Diff two versions side by side.
    page.get_by_label("From").select_option("1")
    page.get_by_label("To", exact=True).select_option("3")
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_test_id("diff-summary")).to_have_text("changed: prompt, config")
    expect(page.locator("table.diff ins").first).to_have_text(" in one word")
    expect(page.locator("table.diff tr.add").first).to_contain_text("Be {{tone}}.")
    shot(page, "prompt-diff")
    page.get_by_role("link", name="Swap").click()
    expect(page).to_have_url(re.compile(r"from=3&to=1"))
    expect(page.locator("table.diff del").first).to_have_text(" in one word")

    # A version: the template as chat bubbles, the config as JSON.
    page.get_by_role("link", name="v3", exact=True).first.click()
    expect(page.locator(".template-chat .msg.role-system mark.var")).to_have_text("{{tone}}")
    expect(page.locator(".template-chat .msg.role-placeholder")).to_contain_text("history")
    expect(page.get_by_test_id("config-json")).to_contain_text('"max_tokens": 20')
    shot(page, "prompt-version")

    # Move a label, with a confirmation step; then roll it back.
    page.goto(url + "/prompts/qa-prompt")
    row = page.locator('tr[data-label="staging"]')
    row.get_by_label("Version for staging").select_option("1")
    row.get_by_role("button", name="Move…").click()
    expect(page.get_by_role("heading", name="Confirm the move")).to_be_visible()
    expect(page.get_by_test_id("move-from")).to_contain_text("v3")
    expect(page.get_by_test_id("move-to")).to_contain_text("v1")
    with srv.client() as api:  # nothing moves before the confirmation
        assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["version"] == 3
    page.get_by_label("Comment for the history (optional)").fill("back to v1 for the demo")
    shot(page, "prompt-label-move")
    page.get_by_role("button", name="Move staging to v1").click()
    expect(page.get_by_role("status").filter(has_text="now points at v1")).to_be_visible()
    expect(page.locator('tr[data-label="staging"] td.targets')).to_have_text("v1")
    page.locator('tr[data-label="staging"]').get_by_role("link", name="Roll back…").click()
    page.get_by_role("button", name="Roll back staging").click()
    expect(page.get_by_role("status").filter(has_text="points at v3 again")).to_be_visible()
    with srv.client() as api:
        assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["version"] == 3
        events = api.get("/api/v1/prompts/qa-prompt/labels/staging/history").json()["data"]
    assert [(e["action"], e["to_version"]) for e in events[:2]] == [("rollback", 3), ("set", 1)]
    assert events[1]["comment"] == "back to v1 for the demo"

    # The playground: a form from the version's variables, a gateway model, a traced run.
    upstream.script("fake-a", Reply("Paris.", prompt_tokens=21))
    page.goto(url + "/prompts/qa-prompt/versions/3/run")
    page.get_by_label("tone").fill("terse")
    page.get_by_label("question").fill("What is the capital of France?")
    page.get_by_label("Model alias").select_option("fake")
    page.get_by_label("Max tokens").fill("5")
    page.get_by_role("button", name="Run").click()
    result = page.get_by_test_id("run-result")
    expect(result.locator(".msg.role-assistant")).to_have_text(re.compile("Paris."))
    expect(page.get_by_test_id("run-tokens")).to_contain_text("21 in")
    expect(page.get_by_test_id("run-cost")).not_to_have_text("—")
    shot(page, "prompt-playground", full_page=True)
    sent = upstream.requests[-1]["body"]
    assert sent["model"] == "fake-a" and sent["max_tokens"] == 5
    assert sent["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}
    trace_id = re.search(r"/traces/([0-9a-f]+)", page.get_by_test_id("run-trace").get_attribute("href") or "")
    assert trace_id
    with srv.client() as api:  # the gateway hands its span to the ingest queue after answering
        deadline = time.monotonic() + 10
        while not (api.get(f"/api/v1/traces/{trace_id.group(1)}").json().get("spans")) and time.monotonic() < deadline:
            time.sleep(0.05)
    page.get_by_test_id("run-trace").click()
    expect(page.locator(".trace-head h1")).to_contain_text("playground qa-prompt v3")
    detail = page.locator("#span-detail")
    expect(detail.locator(".msg.role-assistant")).to_contain_text("Paris.")
    # The span links back to the version.
    detail.get_by_test_id("span-prompt").get_by_role("link").click()
    expect(page).to_have_url(url + "/prompts/qa-prompt/versions/3")

    # Settings › Gateway: aliases (no secrets), keys with limits and usage.
    page.goto(url + "/settings/gateway")
    expect(page.locator('tr[data-alias="fake"]')).to_contain_text("file")
    expect(page.get_by_test_id("project-usage")).to_contain_text("1 / 600")  # the playground's call
    expect(page.locator("table.gw-keys tr[data-public-key]").first).to_contain_text("ci-bot")
    assert "sk-upstream-SECRET" not in page.content()
    shot(page, "settings-gateway", full_page=True)

    assert not watch.errors, watch.errors
    assert not watch.dialogs
    ctx.close()


def test_datasets_and_compare_two_runs(seeded: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    with seeded.client() as api:
        ids = seed_evals(api)
    url = seeded.url
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)

    # A dataset: its versions, the items of any version.
    page.goto(url + "/datasets")
    page.get_by_role("link", name="geo-qa").click()
    expect(page.locator("table.items tbody tr")).to_have_count(4)
    shot(page, "dataset")
    page.get_by_label("Version", exact=True).select_option("1")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("table.items tbody tr")).to_have_count(3)

    # Runs with their aggregates; tick two and compare them.
    page.goto(url + "/experiments")
    expect(page.locator("tr[data-run]")).to_have_count(2)
    shot(page, "experiments")
    for run_id in ids.values():
        page.locator(f'tr[data-run="{run_id}"] input[type=checkbox]').check()
    page.get_by_role("button", name="Compare the two ticked runs").click()
    expect(page.get_by_test_id("diff-exact")).to_contain_text("+0.25")
    chart = page.locator('figure[data-metric="exact"]')
    expect(chart.locator(".ci")).to_have_count(3)  # baseline, candidate, difference
    lists = page.locator('details[data-metric="exact"]')
    expect(lists.locator("table.regressed tr[data-item]")).to_have_count(1)
    expect(lists.locator("table.improved tr[data-item]")).to_have_count(2)
    expect(lists.locator('table.regressed tr[data-item="es"]')).to_contain_text("Madrid")
    page.locator('details[data-metric="length"] > summary').click()
    expect(page.locator('details[data-metric="length"] table.regressed')).to_be_visible()
    shot(page, "experiment-compare", full_page=True)
    page.get_by_role("link", name="Swap").click()
    expect(page.get_by_test_id("diff-exact")).to_contain_text("-0.25")
    page.get_by_role("link", name="candidate", exact=True).first.click()
    expect(page.locator('tr[data-metric="exact"]')).to_contain_text("0.75")
    shot(page, "experiment")

    assert not watch.errors, watch.errors
    assert not watch.dialogs
    ctx.close()

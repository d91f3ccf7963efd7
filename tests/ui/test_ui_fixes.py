"""UI fixes from a trial in Chromium (issue 11, item 8): small traces open expanded, deep span
names are not cut off, multi-line errors keep their newlines inside the panel, the dashboard's
cost axis fits its labels, a session counts failed traces, and the login page tells how to
get a key without a source checkout. Server-side pages, then Debian's chromium (Playwright).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerThread
from tests.ui.conftest import VIEWPORT, Watch
from tests.ui.seed import seed, span

pytestmark = pytest.mark.integration

DEPTH = 14
LONG = "retrieve-and-rerank-the-documents-for-the-users-question-with-the-cross-encoder"
ERROR = ("upstream returned 500:\n  Traceback (most recent call last):\n    File \"agent.py\", line 12\n"
         "RuntimeError: " + "x" * 300)


def _ui(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"})


@pytest.fixture
def fixes(server: LiveServer) -> LiveServer:
    """The usual seed, a deep trace with long names and a multi-line error, and a wide one."""
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    batch: list[dict[str, Any]] = []
    for i in range(DEPTH):
        batch.append(span("tr-deep", f"d{i}", t0, parent=f"d{i - 1}" if i else None, ms=i, dur=500 - i,
                          name=f"{LONG}-{i}"))
    batch.append(span("tr-deep", "d-err", t0, parent=f"d{DEPTH - 1}", ms=20, dur=10, name="failing-step",
                      status="error", status_message=ERROR))
    batch.append(span("tr-deep", "d-orphan", t0, parent="not-arrived-yet", ms=30, dur=10, name="orphan"))
    for i in range(21):  # one over the limit: opens lazily, roots only
        batch.append(span("tr-wide", f"w{i}", t0, parent="w0" if i else None, ms=i, dur=5, name=f"w{i}"))
    # a tiny cost next to the seed's bigger ones
    batch.append(span("tr-cheap", "cheap", t0, name="cheap-call", kind="generation", model="gpt-4o-mini",
                      usage={"input_tokens": 40, "output_tokens": 3}, cost={"total": 0.0000123456}))
    with server.client() as c:
        seed(c)
        r = c.post("/api/v1/ingest", json={"batch": batch})
        assert r.status_code == 200, r.text
    return server


def _expanded(html: str, sid: str) -> bool:
    m = re.search(rf'<li[^>]*data-span-id="{re.escape(sid)}"[^>]*>', html, re.S)
    assert m is not None, sid
    return 'aria-expanded="true"' in m.group(0)


def test_small_traces_open_fully_expanded(fixes: LiveServer) -> None:
    with _ui(fixes) as c:
        html = c.get("/traces/tr-deep").text
        rows = re.findall(r'data-span-id="([^"]+)" data-level="(\d+)"', html)
        # every span, parents before their children, orphans at the top level
        assert [r[0] for r in rows] == [f"d{i}" for i in range(DEPTH)] + ["d-err", "d-orphan"]
        assert [int(r[1]) for r in rows] == [*range(1, DEPTH + 1), DEPTH + 1, 1]
        assert all(_expanded(html, f"d{i}") for i in range(DEPTH))
        assert f'title="{LONG}-13"' in html  # the full name on hover too
        wide = c.get("/traces/tr-wide").text
        assert re.findall(r'data-span-id="([^"]+)"', wide) == ["w0"]
        assert 'aria-expanded="false"' in wide and "children?parent_id=w0" in wide


def test_multi_line_errors_keep_their_newlines(fixes: LiveServer) -> None:
    with _ui(fixes) as c:
        d = c.get("/traces/tr-deep/spans/d-err", headers={"HX-Request": "true"}).text
    m = re.search(r'<pre class="status-message" data-testid="status-message">(.*?)</pre>', d, re.S)
    assert m is not None
    assert m.group(1).startswith("upstream returned 500:\n  Traceback") and "&#34;agent.py&#34;" in m.group(1)


def test_session_with_one_failed_trace_shows_one_error(fixes: LiveServer) -> None:
    # tr-fail (session chat-2) has two failed spans: the root and its generation.
    with _ui(fixes) as c:
        page = c.get("/sessions/chat-2").text
        assert re.search(r"<dt>Errors</dt><dd>1</dd>", page), page[:3000]
        listing = c.get("/sessions").text
        row = re.search(r'chat-2.*?</tr>', listing, re.S)
        assert row is not None and re.search(r'<td class="n">1</td>', row.group(0))
        assert re.search(r"<dt>Errors</dt><dd>1</dd>", c.get("/users/bob").text)
    with fixes.client() as api:
        (s,) = [g for g in api.get("/api/v1/sessions").json()["data"] if g["id"] == "chat-2"]
        assert s["error_count"] == 1


def test_login_page_says_how_to_get_a_key(fixes: LiveServer) -> None:
    from podium.config import Settings
    from podium.server.app import create_app

    th = ServerThread(create_app(Settings(host="0.0.0.0"), store=fixes.store)).start()
    try:
        with httpx.Client(base_url=th.url, timeout=30, headers={"accept": "text/html"}) as c:
            form = c.get("/login").text
            r = c.post("/login", data={"secret_key": "sk-pd-wrong", "next": "/traces"})
            api = c.get("/api/v1/traces")
        for text in (form, r.text, api.text):
            assert "make up" not in text
        assert r.status_code == 401 and "podium keys create" in r.text and "default-keys.env" in r.text
        assert "podium keys create" in form
        assert api.status_code == 401 and "podium keys create" in api.json()["error"]["message"]
    finally:
        th.stop()


def test_layout_in_chromium(fixes: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)

    # A small trace: all rows visible at once; the deepest name is whole, inside the tree card.
    page.goto(fixes.url + "/traces/tr-deep")
    expect(page.locator('li[data-span-id="d-err"]')).to_be_visible()
    names = page.evaluate("""() => {
        const card = document.querySelector('.tree-card').getBoundingClientRect();
        return [...document.querySelectorAll('.span-name')].map(a => {
            const r = a.getBoundingClientRect();
            return {text: a.textContent, cut: a.scrollWidth > a.clientWidth + 1, inside: r.right <= card.right + 1,
                    width: r.width};
        });
    }""")
    assert len(names) == DEPTH + 2
    assert all(not n["cut"] and n["inside"] and n["width"] > 40 for n in names), names

    # A multi-line error: newlines kept, wrapped inside the detail panel.
    page.locator('li[data-span-id="d-err"] .span-name').click()
    msg = page.get_by_test_id("status-message")
    expect(msg).to_be_visible()
    box = page.evaluate("""() => {
        const pre = document.querySelector('[data-testid=status-message]');
        const panel = document.querySelector('#span-detail').getBoundingClientRect();
        const r = pre.getBoundingClientRect();
        return {ws: getComputedStyle(pre).whiteSpace, text: pre.innerText, inside: r.right <= panel.right + 1,
                overflow: pre.scrollWidth > pre.clientWidth + 1};
    }""")
    assert box["ws"] == "pre-wrap" and box["text"].count("\n") >= 3, box
    assert box["inside"] and not box["overflow"], box

    # The dashboard's cost axes are as wide as their longest label.
    page.goto(fixes.url + "/?range=1h")
    expect(page.locator("#chart-cost canvas").first).to_be_visible()
    measure = """() => window.podiumCharts.map(u => {
        const ax = u.axes[1];
        u.ctx.font = ax.font[0];
        const widest = Math.max(...(ax._values || []).map(v => u.ctx.measureText(String(v)).width))
            / (window.devicePixelRatio || 1);
        return {id: u.root.getAttribute('data-chart'), size: ax._size, widest, values: ax._values};
    })"""
    axes = page.evaluate(measure)
    cost = [a for a in axes if a["id"] in ("chart-cost", "chart-models")]
    assert len(cost) == 2, axes
    for a in cost:
        assert all(re.fullmatch(r"\$\d+(\.\d*[1-9])?", str(v)) for v in a["values"]), a  # no trailing zeros
        assert a["size"] >= a["widest"] + 10, a
    # Costs of cents per million calls: the labels get long ($0.00000004), the axis follows.
    page.evaluate("""() => {
        const el = document.getElementById('dash-data'), d = JSON.parse(el.textContent);
        const tiny = v => v ? v / 100000 : v;
        d.cost = d.cost.map(tiny);
        for (const m of Object.keys(d.model_cost)) d.model_cost[m] = d.model_cost[m].map(tiny);
        el.textContent = JSON.stringify(d);
        window.dispatchEvent(new Event('resize'));
    }""")
    page.wait_for_function("() => window.podiumCharts.some(u => (u.axes[1]._values || [])"
                           ".some(v => v.startsWith('$0.0000000')))")
    axes = page.evaluate(measure)
    tiny = [a for a in axes if a["id"] in ("chart-cost", "chart-models")]
    assert max(a["widest"] for a in tiny) > 66, tiny  # more than the old fixed 76 px axis left room for
    for a in tiny:
        assert a["size"] >= a["widest"] + 10, a
    assert not watch.errors and not watch.dialogs, watch.errors
    ctx.close()

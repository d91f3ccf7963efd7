"""The web UI's pages, server side: rendering, filters, escaping, errors, auth, keys, scores."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerThread, make_project
from tests.gateway.fake_upstream import FakeUpstream, Reply
from tests.ui.seed import (
    BIG_STRING_CHARS,
    XSS_COMMIT,
    XSS_INPUT,
    XSS_NAME,
    XSS_TAG,
    XSS_TEMPLATE,
    XSS_USER,
    seed,
    seed_evals,
    seed_prompts,
)


@pytest.fixture
def seeded(server: LiveServer) -> LiveServer:
    with server.client() as c:
        seed(c)
    return server


def ui(server: LiveServer, headers: dict[str, str] | None = None) -> httpx.Client:
    """A browser-like client without credentials (local mode: the server binds 127.0.0.1)."""
    return httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html", **(headers or {})})


def test_every_page_renders(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        for path, needle in [
            ("/", "Traces and errors"),
            ("/?range=1h", "Latency p95"),
            ("/traces", "tr-paris"),
            ("/traces/tr-paris", "qa-bot"),
            ("/sessions", "chat-1"),
            ("/sessions/chat-1", "What is the capital of France?"),
            ("/users", "alice"),
            ("/users/alice", "chat-1"),
            ("/settings", "API keys"),
        ]:
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:500])
            assert r.headers["content-type"].startswith("text/html")
            assert needle in r.text, path
            assert 'href="#main"' in r.text and "<nav" in r.text and 'aria-label="Main"' in r.text


def test_dashboard_numbers(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        html = c.get("/", params={"range": "24h"}).text
    assert re.search(r'data-testid="total-traces">\s*5\s*<', html)
    assert "gpt-4o-mini" in html and "gpt-4o" in html  # by model
    assert "qa-prompt" in html  # by prompt version
    assert "alice" in html and "chat-1" in html  # top users / sessions
    assert "20.0%" in html  # error rate: 1 of 5 traces
    data = re.search(r'<script type="application/json" id="dash-data">(.*?)</script>', html, re.S)
    assert data is not None
    import json

    chart = json.loads(data.group(1))
    assert sum(chart["traces"]) == 5 and sum(chart["errors"]) == 1
    assert len(chart["t"]) == len(chart["p95"]) in (96, 97)  # 15-minute buckets, edges aligned
    assert chart["models"][0] in ("gpt-4o", "gpt-4o-mini")


def test_trace_list_filters_are_kept_in_the_url(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        def ids(**params: Any) -> list[str]:
            html = c.get("/traces", params=params).text
            return re.findall(r'data-trace-id="([^"]+)"', html)

        assert set(ids()) == {"tr-paris", "tr-rome", "tr-fail", "tr-xss", "tr-big"}
        assert ids(status="error") == ["tr-fail"]
        assert set(ids(user_id="alice")) == {"tr-paris", "tr-rome"}
        assert ids(session_id="chat-2") == ["tr-fail"]
        assert set(ids(tag="prod, geo")) == {"tr-paris", "tr-rome"}
        assert ids(model="gpt-4o") == ["tr-fail"]
        assert ids(min_latency_ms="3000") == ["tr-fail"]
        assert set(ids(max_latency_ms="1000")) >= {"tr-paris"}
        assert ids(q="BIG") == ["tr-big"]
        assert ids(name="big-payload") == ["tr-big"]
        assert ids(score_name="accuracy", min_score="0.5") == ["tr-paris"]
        assert ids(score_name="accuracy", min_score="0.95") == []
        assert "tr-fail" in ids(min_cost="0.000001")
        assert ids(range="15m") == []
        assert len(ids(range="1h")) == 5
        assert ids(sort="latency_ms", order="desc")[0] == "tr-fail"
        # Pagination: the next link keeps the filters and carries the cursor.
        html = c.get("/traces", params={"user_id": "alice"}).text
        assert "Next page" not in html
        bad = c.get("/traces", params={"min_latency_ms": "fast", "cursor": "zzz"})
        assert bad.status_code == 200 and "Min latency must be a number" in bad.text
        bad = c.get("/traces", params={"cursor": "not-a-cursor"})
        assert "invalid cursor" in bad.text
        # The HTMX request gets only the results fragment.
        frag = c.get("/traces", params={"status": "error"}, headers={"HX-Request": "true", "HX-Target": "results"})
        assert "<html" not in frag.text and 'data-trace-id="tr-fail"' in frag.text


def test_trace_pagination(server: LiveServer) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.ui.seed import span

    t0 = datetime.now(UTC) - timedelta(hours=2)
    batch = [span(f"t{i:03d}", "root", t0 + timedelta(seconds=i), user_id="u") for i in range(60)]
    with server.client() as c:
        assert c.post("/api/v1/ingest", json={"batch": batch}).status_code == 200
    with ui(server) as c:
        first = c.get("/traces", params={"user_id": "u"}).text
        assert len(re.findall(r'data-trace-id="', first)) == 50
        nxt = re.search(r'rel="next" href="([^"]+)"', first)
        assert nxt is not None
        url = nxt.group(1).replace("&amp;", "&")
        assert "user_id=u" in url and "cursor=" in url
        second = c.get(url).text
        assert len(re.findall(r'data-trace-id="', second)) == 10
        assert "First page" in second and 'rel="next"' not in second


def test_trace_detail(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        html = c.get("/traces/tr-paris").text
        # A small trace opens with its whole tree expanded (children links kept for collapse and
        # expand again); ids are copyable.
        assert re.search(r'data-span-id="tr-paris-root"[^>]*aria-expanded="true"', html, re.S)
        assert 'data-span-id="tr-paris-llm"' in html and "children?parent_id=tr-paris-root" in html
        assert 'data-copy="tr-paris"' in html
        assert "Paris." in html and "accuracy" in html and "matches the reference" in html
        assert "1,280" in html and "1,200 in" in html  # the trace's token totals
        kids = c.get("/traces/tr-paris/children", params={"parent_id": "tr-paris-root", "level": 2}).text
        assert 'data-span-id="tr-paris-retrieve"' in kids and 'data-span-id="tr-paris-llm"' in kids
        assert 'aria-level="2"' in kids and "<html" not in kids and "gpt-4o-mini" in kids and "qa-prompt v3" in kids
        detail = c.get("/traces/tr-paris/spans/tr-paris-llm", headers={"HX-Request": "true"}).text
        assert "You answer geography questions" in detail and 'class="msg role-system"' in detail
        assert 'class="msg role-assistant"' in detail and "Time to first token" in detail
        assert "qa-prompt" in detail and "v3" in detail and "1,200 in" in detail
        # Without HTMX the span URL redirects to the page with the span selected.
        r = c.get("/traces/tr-paris/spans/tr-paris-llm", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/traces/tr-paris?span=tr-paris-llm"
        full = c.get(r.headers["location"]).text
        assert "You answer geography questions" in full
        # A deep link to a nested span opens the tree down to it.
        deep = c.get("/traces/tr-paris", params={"span": "tr-paris-tool"}).text
        assert re.search(r'data-span-id="tr-paris-root"[^>]*aria-expanded="true"', deep, re.S)
        assert re.search(r'data-span-id="tr-paris-llm"[^>]*aria-expanded="true"', deep, re.S)
        assert re.search(r'data-span-id="tr-paris-tool"[^>]*aria-selected="true"', deep, re.S)
        raw = c.get("/traces/tr-paris/spans/tr-paris-llm/raw/input")
        assert raw.headers["content-type"].startswith("application/json") and raw.json()[1]["role"] == "user"


def test_big_payloads_are_truncated(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        r = c.get("/traces/tr-big")
        assert r.status_code == 200 and len(r.content) < 200_000, len(r.content)
        assert "more characters" in r.text and "more items" in r.text
        d = c.get("/traces/tr-big/spans/big-root", headers={"HX-Request": "true"})
        assert len(d.content) < 200_000
        raw = c.get("/traces/tr-big/spans/big-root/raw/input")
        assert len(raw.json()["blob"]) == BIG_STRING_CHARS


def test_user_content_is_escaped(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        pages = [
            c.get("/traces").text,
            c.get("/traces/tr-xss").text,
            c.get("/traces/tr-xss/spans/xss-root", headers={"HX-Request": "true"}).text,
            c.get("/").text,
            c.get("/users").text,
            c.get("/sessions").text,
            c.get("/users/" + httpx.URL("/" + XSS_USER).raw_path.decode()[1:]).text,
            c.get("/sessions/s%3Cb%3Ebold%3C%2Fb%3E").text,
            c.get("/traces", params={"q": XSS_NAME, "user_id": XSS_USER}).text,
        ]
    for html in pages:
        for bad in (XSS_NAME, XSS_USER, XSS_TAG, XSS_INPUT, "<b>bold</b>", "<v onclick"):
            assert bad not in html
    joined = "\n".join(pages)
    assert "&lt;script&gt;alert(" in joined and "&lt;img src=x onerror=" in joined


def test_not_found_pages(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        for path in ("/traces/nope", "/users/nobody", "/sessions/none", "/no-such-page",
                     "/traces/tr-paris/spans/nope/raw/input"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert r.headers["content-type"].startswith("text/html") and "<nav" in r.text, path
        # API paths keep their JSON errors.
        r = c.get("/api/v1/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = c.get("/api/v1/traces")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_static_files_and_vendor_assets(server: LiveServer) -> None:
    with ui(server) as c:
        assert c.get("/ui/static/app.css").status_code == 200
        assert c.get("/ui/static/app.js").status_code == 200
        for f in ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"):
            r = c.get(f"/ui/static/vendor/{f}")
            assert r.status_code == 200, f"{f} missing: run `bash scripts/ui-assets.sh` (make setup does it)"
        assert "scripts/ui-assets.sh" not in c.get("/").text  # no missing-assets banner


def test_add_score_by_hand(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        hx = {"HX-Request": "true"}
        r = c.post("/traces/tr-rome/scores", data={"name": "helpful", "data_type": "boolean", "value": "up",
                                                   "comment": "nice <b>answer</b>"}, headers=hx)
        assert r.status_code == 200 and "Score saved" in r.text and "nice &lt;b&gt;answer&lt;/b&gt;" in r.text
        r = c.post("/traces/tr-rome/scores", data={"name": "rating", "data_type": "numeric", "value": "4.5",
                                                   "span_id": "tr-rome-llm"}, headers=hx)
        assert r.status_code == 200 and 'id="span-scores"' in r.text and r.headers["hx-trigger"]
        r = c.post("/traces/tr-rome/scores", data={"name": "tone", "data_type": "categorical", "value": "formal"},
                   headers=hx)
        assert r.status_code == 200
        r = c.post("/traces/tr-rome/scores", data={"name": "rating", "data_type": "numeric", "value": "lots"},
                   headers=hx)
        assert r.status_code == 400 and "needs a number" in r.text
        r = c.post("/traces/tr-rome/scores", data={"name": "x", "data_type": "numeric", "value": "1",
                                                   "span_id": "tr-paris-llm"}, headers=hx)
        assert r.status_code == 400  # a span of another trace
        # Without HTMX: a redirect back to the trace.
        r = c.post("/traces/tr-rome/scores", data={"name": "helpful", "data_type": "boolean", "value": "down"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/traces/tr-rome"
    with seeded.client() as api:
        got = api.get("/api/v1/scores", params={"trace_id": "tr-rome"}).json()["data"]
    by = {(s["name"], str(s["value"])): s for s in got}
    assert set(by) == {("helpful", "True"), ("rating", "4.5"), ("tone", "formal"), ("helpful", "False")}
    assert all(s["source"] == "human" for s in got)
    assert by[("rating", "4.5")]["span_id"] == "tr-rome-llm" and by[("rating", "4.5")]["data_type"] == "numeric"
    assert by[("helpful", "True")]["comment"] == "nice <b>answer</b>"
    assert by[("tone", "formal")]["data_type"] == "categorical"


def test_cross_site_posts_are_refused(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        r = c.post("/traces/tr-rome/scores", data={"name": "x", "data_type": "numeric", "value": "1"},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "another site" in r.text
        r = c.post("/settings/keys", data={"role": "admin"}, headers={"Referer": "https://evil.example/x"})
        assert r.status_code == 403
        ok = c.post("/traces/tr-rome/scores", data={"name": "x", "data_type": "numeric", "value": "1"},
                    headers={"Origin": seeded.url, "HX-Request": "true"})
        assert ok.status_code == 200


def test_keys_create_reveal_once_and_revoke(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        r = c.post("/settings/keys", data={"role": "viewer", "note": "dashboards"}, headers={"HX-Request": "true"})
        assert r.status_code == 201
        secret = re.search(r'data-copy="(sk-pd-[^"]+)"', r.text)
        public = re.search(r'data-copy="(pk-pd-[^"]+)"', r.text)
        assert secret and public
        # The listing never shows the secret again.
        page = c.get("/settings").text
        assert secret.group(1) not in page and public.group(1) in page and "dashboards" in page
        # The new key works on the REST API with its role...
        with httpx.Client(base_url=seeded.url, auth=(public.group(1), secret.group(1))) as api:
            assert api.get("/api/v1/traces").status_code == 200
            assert api.post("/api/v1/scores", json={"name": "x", "value": 1, "trace_id": "tr-rome"}).status_code == 403
            r = c.post(f"/settings/keys/{public.group(1)}/revoke", headers={"HX-Request": "true"})
            assert r.status_code == 200 and "revoked" in r.text
            assert api.get("/api/v1/traces").status_code == 401
        r = c.post("/settings/keys", data={"role": "superuser"}, headers={"HX-Request": "true"})
        assert r.status_code == 400 and "unknown role" in r.text


def _remote_server(store: Any) -> ServerThread:
    """A server that believes it is bound to a public address: the UI asks for a key."""
    from podium.config import Settings
    from podium.server.app import create_app

    return ServerThread(create_app(Settings(host="0.0.0.0"), store=store)).start()


def test_non_loopback_bind_requires_a_key(seeded: LiveServer) -> None:
    viewer = make_project(seeded.store, "other", role="viewer")
    th = _remote_server(seeded.store)
    try:
        with httpx.Client(base_url=th.url, timeout=30, headers={"accept": "text/html"}) as c:
            r = c.get("/traces?status=error", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Ftraces%3Fstatus%3Derror")
            assert c.get("/login").status_code == 200
            r = c.post("/login", data={"secret_key": "sk-pd-wrong", "next": "/traces"})
            assert r.status_code == 401 and "unknown or revoked" in r.text
            r = c.post("/login", data={"secret_key": seeded.keys.secret_key, "next": "//evil.example/"},
                       follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/"
            cookie = r.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert "tr-paris" in c.get("/traces").text
            # A viewer key of another project sees only that project, and cannot score or manage keys.
            c.cookies.clear()
            c.post("/login", data={"secret_key": viewer.secret_key})
            assert "tr-paris" not in c.get("/traces").text
            assert c.get("/traces/tr-paris").status_code == 404
            assert "cannot manage keys" in c.get("/settings").text
            assert c.post("/settings/keys", data={"role": "admin"}).status_code == 403
            # Logging out forgets the key.
            c.post("/logout")
            assert c.get("/", follow_redirects=False).status_code == 303
        # API clients may send the key as they do for the API.
        with httpx.Client(base_url=th.url, timeout=30, auth=seeded.keys.basic()) as c:
            assert c.get("/traces").status_code == 200
        # An ingest-only key cannot read pages.
        ingest = make_project(seeded.store, "ingest-only", role="ingest")
        with httpx.Client(base_url=th.url, timeout=30) as c:
            r = c.post("/login", data={"secret_key": ingest.secret_key})
            assert r.status_code == 403 and "cannot read" in r.text
    finally:
        th.stop()


def test_local_mode_needs_a_loopback_host_header(seeded: LiveServer) -> None:
    # A DNS-rebinding page (or a proxy forwarding a public name) does not get local mode.
    with ui(seeded, headers={"host": "attacker.example"}) as c:
        r = c.get("/traces", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with ui(seeded, headers={"host": f"localhost:{seeded.thread.port}"}) as c:
        assert c.get("/traces").status_code == 200


def test_sessions_read_as_a_conversation(seeded: LiveServer) -> None:
    with ui(seeded) as c:
        html = c.get("/sessions/chat-1").text
    first, second = html.index("What is the capital of France?"), html.index("And of Italy?")
    assert first < second < html.index("Rome.")
    assert html.index("Paris.") < second


def test_user_page_lists_sessions_spend_and_scores(seeded: LiveServer) -> None:
    with seeded.client() as api:
        api.post("/api/v1/scores", json={"name": "accuracy", "value": 0.5, "trace_id": "tr-rome", "source": "eval"})
    with ui(seeded) as c:
        html = c.get("/users/alice").text
    assert "chat-1" in html and "accuracy" in html and "0.7" in html  # average of 0.9 and 0.5
    spend = re.search(r'data-testid="user-spend">([^<]+)<', html)
    assert spend is not None and spend.group(1).startswith("$") and spend.group(1) != "$0"


# --- prompts -----------------------------------------------------------------------------------------


@pytest.fixture
def prompts(seeded: LiveServer) -> LiveServer:
    with seeded.client() as c:
        seed_prompts(c)
    return seeded


def test_prompt_pages_render(prompts: LiveServer) -> None:
    with ui(prompts) as c:
        for path, needles in [
            ("/prompts", ["qa-prompt", "team/greeting", "canary", "v2 90%", "Protected labels"]),
            ("/prompts?q=greet", ["team/greeting"]),
            ("/prompts/qa-prompt", ["Labels", "production", "canary", "A/B:", "one word, with history",
                                    "ship warmer", "Versions and their calls", 'id="prompt-data"']),
            ("/prompts/qa-prompt/versions/3", ['class="msg role-system"', 'class="msg role-placeholder"',
                                               '<mark class="var">{{tone}}</mark>', "&#34;max_tokens&#34;: 20",
                                               "Calls with this version"]),
            ("/prompts/qa-prompt/versions/latest", ["qa-prompt", "v3"]),
            ("/prompts/team/greeting/versions/1", ['class="template-text"']),
            ("/prompts/qa-prompt/diff?from=1&to=3", ['class="diff"', "changed: prompt, config"]),
            ("/prompts/qa-prompt/diff?from=production&to=staging", ["v2", "v3"]),
            ("/prompts/qa-prompt/history", ["ship warmer", "Roll back…"]),
            ("/prompts/qa-prompt/history?label=canary", ["canary"]),
            ("/prompts/qa-prompt/versions/3/run", ['name="var:question"', 'name="var:tone"', 'name="ph:history"',
                                                   '<option value="local"']),
        ]:
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:2000])
            for n in needles:
                assert n in r.text, (path, n)
        assert "team/greeting" not in c.get("/prompts", params={"label": "production"}).text
        assert "qa-prompt" not in c.get("/prompts", params={"tag": XSS_TAG}).text
        frag = c.get("/prompts", params={"q": "qa"}, headers={"HX-Request": "true", "HX-Target": "results"})
        assert "<html" not in frag.text and "qa-prompt" in frag.text
        assert c.get("/prompts/nope").status_code == 404
        assert c.get("/prompts/qa-prompt/versions/9").status_code == 404
        r = c.get("/prompts/qa-prompt/diff", params={"from": "1", "to": "nolabel"})
        assert r.status_code == 404 and "no label" in r.text
        text = c.get("/prompts/qa-prompt/diff", params={"from": "1", "to": "3", "format": "text"})
        assert text.headers["content-type"].startswith("text/plain") and "+++ qa-prompt@3/prompt" in text.text


def test_prompt_content_is_escaped(prompts: LiveServer) -> None:
    with prompts.client() as api:
        r = api.post("/api/v1/prompts/team/greeting/versions", json={
            "prompt": XSS_TEMPLATE + " <b>v2</b>", "config": {"<k>": "<v onclick=alert(3)>"},
            "commit_message": "<script>alert('c2')</script>"})
        assert r.status_code == 201, r.text
        api.put("/api/v1/prompts/team/greeting/labels/beta", json={"version": 1, "comment": XSS_COMMIT})
    with ui(prompts) as c:
        pages = [c.get(p).text for p in (
            "/prompts", "/prompts/team/greeting", "/prompts/team/greeting/versions/1",
            "/prompts/team/greeting/versions/2", "/prompts/team/greeting/diff?from=1&to=2",
            "/prompts/team/greeting/history", "/prompts/team/greeting/versions/2/run",
            "/prompts/team/greeting/labels/beta/move?version=2", "/prompts/team/greeting/labels/beta/rollback")]
    for html in pages:
        for bad in (XSS_TAG, XSS_COMMIT, "<script>alert('xss-template')", "<b>v2</b>", "<v onclick", "<b>bold</b>",
                    "<script>alert('c2')"):
            assert bad not in html
    joined = "\n".join(pages)
    assert "&lt;/pre&gt;&lt;script&gt;alert(" in joined and "&lt;img src=x onerror=" in joined


def test_label_move_with_confirmation_and_rollback(prompts: LiveServer) -> None:
    with ui(prompts) as c, prompts.client() as api:
        # The move form names the label in a field: it leads to that label's confirmation page.
        r = c.get("/prompts/qa-prompt/labels", params={"label": "staging", "version": "1"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/prompts/qa-prompt/labels/staging/move?version=1"
        confirm = c.get(r.headers["location"])
        assert confirm.status_code == 200 and "Confirm the move" in confirm.text
        now = re.search(r'data-testid="move-from">(.*?)</dd>', confirm.text, re.S)
        after = re.search(r'data-testid="move-to">(.*?)</dd>', confirm.text, re.S)
        assert now and ">v3<" in now.group(1) and after and ">v1<" in after.group(1)
        assert "diff v3 → v1" in confirm.text
        # Nothing moved yet: the confirmation page only reads.
        assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["version"] == 3
        r = c.post("/prompts/qa-prompt/labels/staging", data={"version": "1", "comment": "back to basics"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/prompts/qa-prompt?moved=staging"
        assert "now points at v1" in c.get(r.headers["location"]).text
        assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["version"] == 1
        ev = api.get("/api/v1/prompts/qa-prompt/labels/staging/history").json()["data"][0]
        assert (ev["from_version"], ev["to_version"], ev["actor"], ev["comment"]) == (3, 1, "ui-local", "back to basics")
        # An A/B split: 75% v1, 25% v3.
        r = c.post("/prompts/qa-prompt/labels/staging", data={"version": "1", "ab_version": "3", "ab_weight": "25"},
                   follow_redirects=False)
        assert r.status_code == 303
        got = api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["targets"]
        assert got == [{"version": 1, "weight": 75.0}, {"version": 3, "weight": 25.0}]
        assert 'data-testid="ab-split"' in c.get("/prompts/qa-prompt").text
        # Roll back (confirmation first): the split goes, v1 is back.
        rb = c.get("/prompts/qa-prompt/labels/staging/rollback")
        assert rb.status_code == 200 and "Confirm the rollback" in rb.text and "v1 75%" in rb.text
        r = c.post("/prompts/qa-prompt/labels/staging/rollback", data={"comment": "undo"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/prompts/qa-prompt?rolled_back=staging"
        assert "points at v1 again" in c.get(r.headers["location"]).text
        assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["targets"] == [
            {"version": 1, "weight": 1.0}]
        hist = c.get("/prompts/qa-prompt/history", params={"label": "staging"}).text
        assert "undo" in hist and "rollback" in hist and "back to basics" in hist
        # Mistakes get the registry's messages.
        bad = c.get("/prompts/qa-prompt/labels/staging/move", params={"version": "9"})
        assert bad.status_code == 400 and "no version 9" in bad.text
        bad = c.post("/prompts/qa-prompt/labels/latest", data={"version": "1"})
        assert bad.status_code == 400 and "latest" in bad.text
        bad = c.post("/prompts/qa-prompt/labels/staging", data={"version": "one"})
        assert bad.status_code == 400 and "version number" in bad.text
        bad = c.post("/prompts/qa-prompt/labels/staging", data={"version": "1", "ab_version": "3", "ab_weight": "100"})
        assert bad.status_code == 400 and "between 1 and 99" in bad.text
        r = c.post("/prompts/team/greeting/labels/never/rollback")
        assert r.status_code == 404
        assert c.get("/prompts/qa-prompt/labels/never/rollback").status_code == 404
        # Cross-site posts are refused like every UI form.
        r = c.post("/prompts/qa-prompt/labels/staging", data={"version": "2"}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["version"] == 1


def test_protected_labels_and_roles(prompts: LiveServer) -> None:
    store, pid = prompts.store, prompts.keys.project_id
    member = store.projects.create_key(pid, role="member").secret_key
    viewer = store.projects.create_key(pid, role="viewer").secret_key
    th = _remote_server(store)
    try:
        with httpx.Client(base_url=th.url, timeout=30, headers={"accept": "text/html"}) as c:
            assert c.post("/login", data={"secret_key": member}).status_code == 303
            # A member may move staging but not the protected production: the API's message is shown.
            r = c.post("/prompts/qa-prompt/labels/production", data={"version": "3"})
            assert r.status_code == 403
            assert "label &#39;production&#39; is protected in this project: only admin keys may move it" in r.text
            assert "Confirm the move" in r.text  # the confirmation page again, with the reason
            r = c.post("/prompts/qa-prompt/labels/production/rollback")
            assert r.status_code == 403 and "only admin keys may roll back it" in r.text
            confirm = c.get("/prompts/qa-prompt/labels/production/move", params={"version": "3"})
            assert confirm.status_code == 200 and "protected label: only admin keys may move it" in confirm.text
            r = c.post("/prompts/qa-prompt/labels/staging", data={"version": "2"}, follow_redirects=False)
            assert r.status_code == 303
            assert c.post("/settings/prompts", data={"protected_labels": ""}).status_code == 403
            c.cookies.clear()
            # A viewer reads prompts but moves nothing and runs nothing.
            c.post("/login", data={"secret_key": viewer})
            page = c.get("/prompts/qa-prompt")
            assert page.status_code == 200 and "Review the move" not in page.text and "Move…" not in page.text
            assert c.get("/prompts/qa-prompt/labels/staging/move", params={"version": "1"}).status_code == 403
            r = c.post("/prompts/qa-prompt/labels/staging", data={"version": "1"})
            assert r.status_code == 403 and "cannot move prompt labels" in r.text
            r = c.post("/prompts/qa-prompt/versions/1/run", data={"var:question": "x"})
            assert r.status_code == 403 and "cannot run prompts" in r.text
            assert "cannot run the playground" in c.get("/prompts/qa-prompt/versions/1/run").text
        with prompts.client() as api:
            assert api.get("/api/v1/prompts/qa-prompt/labels/production").json()["version"] == 2
            assert api.get("/api/v1/prompts/qa-prompt/labels/staging").json()["version"] == 2
    finally:
        th.stop()
    # An admin (local mode here) sets the protected labels from Settings.
    with ui(prompts) as c:
        r = c.post("/settings/prompts", data={"protected_labels": "production, staging"}, follow_redirects=False)
        assert r.status_code == 303
        assert "staging" in c.get("/settings").text
    with prompts.client() as api:
        assert api.get("/api/v1/prompts/settings").json()["protected_labels"] == ["production", "staging"]


def test_playground_runs_through_the_gateway_and_is_traced(prompts: LiveServer, upstream: FakeUpstream) -> None:
    with prompts.client() as api:
        r = api.put("/api/v1/gateway/models/fake", json={"deployments": [
            {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url, "api_key": "sk-up-SECRET"}]})
        assert r.status_code in (200, 201), r.text
        api.put("/api/v1/prices/fake-a", json={"input_per_million": "1", "output_per_million": "2"})
    upstream.script("fake-a", Reply("Paris, <b>of course</b>.", prompt_tokens=12))
    hx = {"HX-Request": "true"}
    with ui(prompts) as c:
        form = c.get("/prompts/qa-prompt/versions/3/run").text
        assert '<option value="fake"' in form and "is not a gateway alias" in form  # config names gpt-4o-mini
        r = c.post("/prompts/qa-prompt/versions/3/run", headers=hx, data={
            "var:tone": "terse", "var:question": "Capital of France?", "ph:history": "[]", "model": "fake",
            "max_tokens": "7", "cache": "on"})
        assert r.status_code == 200, r.text
        assert "<html" not in r.text and "Paris, &lt;b&gt;of course&lt;/b&gt;." in r.text
        assert re.search(r'data-testid="run-tokens">12 in', r.text)
        assert re.search(r'data-testid="run-cost">\$0\.0000', r.text)
        trace = re.search(r'href="/traces/([0-9a-f]+)\?span=([0-9a-f]+)" data-testid="run-trace"', r.text)
        assert trace, r.text
        sent = upstream.requests[-1]["body"]
        assert sent["model"] == "fake-a" and sent["max_tokens"] == 7 and sent["temperature"] == 0.5
        assert sent["messages"][0]["content"] == "You answer geography questions in one word.\nBe terse."
        # The run is a trace whose generation links back to the version.
        import time

        url = f"/traces/{trace.group(1)}/spans/{trace.group(2)}"
        deadline = time.monotonic() + 10
        while (sp := c.get(url, headers=hx)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # the gateway hands its span to the ingest queue after answering
        assert sp.status_code == 200 and 'href="/prompts/qa-prompt/versions/3"' in sp.text
        assert "playground qa-prompt v3" in c.get(f"/traces/{trace.group(1)}").text
        # Errors come back in the form: a bad placeholder, a missing variable, an unknown model.
        r = c.post("/prompts/qa-prompt/versions/3/run", headers=hx, data={
            "var:tone": "x", "var:question": "y", "ph:history": "[oops", "model": "fake"})
        assert r.status_code == 400 and "history must be a JSON list" in r.text
        r = c.post("/prompts/qa-prompt/versions/3/run", headers=hx, data={"var:tone": "x", "model": "fake"})
        assert r.status_code == 400 and "missing variable: question" in r.text
        r = c.post("/prompts/qa-prompt/versions/3/run", headers=hx, data={
            "var:tone": "x", "var:question": "y", "model": "nope"})
        assert r.status_code == 404 and "does not exist" in r.text
        # Without HTMX: the whole page, the values kept.
        r = c.post("/prompts/qa-prompt/versions/3/run", data={
            "var:tone": "calm", "var:question": "Rome?", "ph:history": "[]", "model": "fake"})
        assert r.status_code == 200 and "<html" in r.text and "Rome?</textarea>" in r.text
        # The calls show in the version's analytics.
        page = c.get("/prompts/qa-prompt/versions/3").text
        assert "Calls with this version" in page


def test_trace_and_dashboard_link_prompt_versions(prompts: LiveServer) -> None:
    with ui(prompts) as c:
        span = c.get("/traces/tr-paris/spans/tr-paris-llm", headers={"HX-Request": "true"}).text
        assert 'href="/prompts/qa-prompt/versions/3"' in span
        dash = c.get("/", params={"range": "24h"}).text
        assert 'href="/prompts/qa-prompt/versions/3"' in dash and 'id="chart-prompts"' in dash
        data = re.search(r'<script type="application/json" id="dash-data">(.*?)</script>', dash, re.S)
        assert data is not None
        import json

        chart = json.loads(data.group(1))
        assert chart["prompt_versions"] == ["qa-prompt v3"] and sum(chart["prompt_calls"]["qa-prompt v3"]) == 3
        page = c.get("/prompts/qa-prompt").text
        pdata = re.search(r'<script type="application/json" id="prompt-data">(.*?)</script>', page, re.S)
        assert pdata is not None
        pv = json.loads(pdata.group(1))
        assert pv["labels"] == ["v1", "v2", "v3"] and pv["count"] == [0, 0, 3] and pv["errors"] == [0, 0, 1]


def test_gateway_settings(prompts: LiveServer) -> None:
    store, pid = prompts.store, prompts.keys.project_id
    gw_key = store.projects.create_key(pid, role="gateway", note="ci-bot").key.public_key
    with prompts.client() as api:
        r = api.put("/api/v1/gateway/models/team/gpt", json={
            "deployments": [{"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-literal-SECRET-123"},
                            {"provider": "openai", "model": "gpt-4o", "weight": 0.1}],
            "fallbacks": ["local"], "description": "<i>team</i> model"})
        assert r.status_code == 201, r.text
    with ui(prompts) as c:
        html = c.get("/settings/gateway").text
        assert "sk-literal-SECRET-123" not in html and "key: <code>set</code>" in html
        assert 'data-alias="team/gpt"' in html and 'data-alias="local"' in html and "&lt;i&gt;team" in html
        assert html.index(gw_key) < html.index(prompts.keys.public_key)  # gateway keys first
        assert "ci-bot" in html and "Project usage" in html
        frag = c.get("/settings/gateway/usage", headers={"HX-Request": "true"}).text
        assert "<html" not in frag and gw_key in frag
        # A key's limits and model list.
        form = c.get(f"/settings/gateway/keys/{gw_key}").text
        assert 'value="team/gpt"' in form and 'name="budget_daily"' in form
        r = c.post(f"/settings/gateway/keys/{gw_key}", content=(
            b"rpm=60&tpm=&max_parallel=4&budget_daily=2.5&budget_monthly=&budget_total="
            b"&models_mode=list&model=local&model=team%2Fgpt"),
            headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/settings/gateway?saved={gw_key}"
        k = next(k for k in store.projects.list_keys(pid) if k.public_key == gw_key)
        assert k.limits == {"rpm": 60, "max_parallel": 4, "budget_daily": 2.5} and k.models == ["local", "team/gpt"]
        html = c.get("/settings/gateway?saved=" + gw_key).text
        assert "Saved the limits of" in html and "/ $2.50" in html
        r = c.post(f"/settings/gateway/keys/{gw_key}", data={"rpm": "1.5", "budget_daily": "lots",
                                                               "models_mode": "all"})
        assert r.status_code == 400 and "invalid value for rpm, budget_daily" in r.text
        assert 'value="lots"' in r.text  # what was typed stays in the form
        r = c.post(f"/settings/gateway/keys/{gw_key}", data={"models_mode": "all"}, follow_redirects=False)
        assert r.status_code == 303
        k = next(k for k in store.projects.list_keys(pid) if k.public_key == gw_key)
        assert not k.limits and k.models is None
        assert c.get("/settings/gateway/keys/pk-pd-nope").status_code == 404
        # Project limits.
        r = c.post("/settings/gateway/limits", data={"rpm": "100", "budget_monthly": "40"}, follow_redirects=False)
        assert r.status_code == 303
        with prompts.client() as api:
            assert api.get("/api/v1/gateway/limits").json()["limits"] == {"rpm": 100, "budget_monthly": 40.0}
        r = c.post("/settings/gateway/limits", data={"tpm": "-1"})
        assert r.status_code == 400 and "invalid value for tpm" in r.text


# --- datasets and experiments -----------------------------------------------------------------------


def test_dataset_and_experiment_pages(seeded: LiveServer) -> None:
    with seeded.client() as api:
        ids = seed_evals(api)
    base, cand = ids["baseline"], ids["candidate"]
    with ui(seeded) as c:
        html = c.get("/datasets").text
        assert 'data-dataset="geo-qa"' in html and "capitals &lt;b&gt;of&lt;/b&gt; Europe" in html
        html = c.get("/datasets/geo-qa").text
        assert "Items of v2" in html and len(re.findall(r'<tr data-item="', html)) == 4
        assert "add Germany" in html and "candidate" in html  # versions, and the runs on it
        v1 = c.get("/datasets/geo-qa", params={"version": "1"}).text
        assert "Items of v1" in v1 and 'data-item="de"' not in v1 and 'data-item="fr"' in v1
        dev = c.get("/datasets/geo-qa", params={"split": "dev"}).text
        assert re.findall(r'<tr data-item="([^"]+)"', dev) == ["es"]
        assert c.get("/datasets/nope").status_code == 404
        assert c.get("/datasets/geo-qa", params={"version": "x"}).status_code == 400

        runs = c.get("/experiments").text
        assert re.findall(r'<tr data-run="([^"]+)"', runs) == [cand, base]  # newest first
        assert "exact</strong> 0.75 <span" in runs and "[0.25, 1]" in runs
        assert re.findall(r'<tr data-run="', c.get("/experiments", params={"status": "running"}).text) == []
        assert len(re.findall(r'<tr data-run="', c.get("/experiments", params={"label": "ci"}).text)) == 2
        assert len(re.findall(r'<tr data-run="', c.get("/experiments", params={"name": "baseline"}).text)) == 1

        run = c.get(f"/experiments/{cand}").text
        assert 'data-metric="exact"' in run and 'data-metric="length"' in run and "Aggregates" in run
        assert len(re.findall(r'<tr data-item="', run)) == 4 and "geo-qa v2" in run
        assert c.get("/experiments/nope").status_code == 404

        cmp = c.get("/experiments/compare", params={"baseline": base, "candidate": cand})
        assert cmp.status_code == 200, cmp.text[:1000]
        page = cmp.text
        assert re.search(r'data-testid="diff-exact">\+0\.25', page)
        assert "2 improved · 1 regressed · 1 unchanged" in page
        lists = page[page.index("Items that changed"):]
        regressed = lists[lists.index("Regressed"):lists.index("Improved")]
        assert 'data-item="es"' in regressed and "Madrid" in regressed
        improved = lists[lists.index("Improved"):]
        assert 'data-item="it"' in improved and 'data-item="de"' in improved and "Berlin" in improved
        # Picking two runs from the list: the older one is the baseline.
        picked = c.get("/experiments/compare", params=[("run", cand), ("run", base)]).text
        assert re.search(r'Baseline: <a href="/experiments/' + base, picked)
        assert c.get("/experiments/compare", params={"run": base}).status_code == 400
        assert "Choose two runs" in c.get("/experiments/compare").text
        bad = c.get("/experiments/compare", params={"baseline": base, "candidate": "nope"})
        assert bad.status_code == 404
        for html in (run, page, picked, c.get("/datasets/geo-qa").text):
            assert XSS_INPUT not in html and "<b>of</b>" not in html
        assert "&lt;/script&gt;&lt;script&gt;alert(" in page


# --- creating prompts and versions -------------------------------------------------------------------

MSGS = '[{"role": "user", "content": "{{question}}"}]'


def test_create_text_and_chat_prompts(prompts: LiveServer) -> None:
    with ui(prompts) as c, prompts.client() as api:
        assert 'href="/prompts/new"' in c.get("/prompts").text
        form = c.get("/prompts/new")
        assert form.status_code == 200
        for needle in ('<label for="np-name">', '<label for="np-template">', '<label for="np-config">',
                       '<label for="np-tags">', '<label for="np-labels">', '<label for="np-commit">'):
            assert needle in form.text
        r = c.post("/prompts/new", data={"name": "ui/summary", "type": "text", "template": "Summarise {{text}}",
                                         "config": '{"model": "local", "temperature": 0.1}', "tags": "ui, docs",
                                         "commit_message": "first cut", "labels": "production"},
                   follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/prompts/ui/summary/versions/1?created=1"
        page = c.get(r.headers["location"]).text
        assert "Saved: ui/summary v1" in page and "first cut" in page
        got = api.get("/api/v1/prompts/ui/summary").json()
        assert got["type"] == "text" and got["tags"] == ["ui", "docs"] and got["labels"]["production"]["version"] == 1
        v1 = api.get("/api/v1/prompts/ui/summary/versions/1").json()
        assert v1["prompt"] == "Summarise {{text}}" and v1["config"] == {"model": "local", "temperature": 0.1}
        assert v1["variables"] == ["text"] and v1["created_by"] == "ui-local"
        # A chat prompt: a JSON list of messages.
        msgs = '[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "{{question}}"}]'
        r = c.post("/prompts/new", data={"name": "ui/chat", "type": "chat", "template": msgs}, follow_redirects=False)
        assert r.status_code == 303, r.text[:2000]
        assert 'class="msg role-system"' in c.get(r.headers["location"]).text
        v1 = api.get("/api/v1/prompts/ui/chat/versions/1").json()
        assert v1["type"] == "chat" and v1["prompt"][1] == {"role": "user", "content": "{{question}}"}
        # An existing name is not silently versioned: the API's conflict message.
        r = c.post("/prompts/new", data={"name": "ui/chat", "type": "chat", "template": msgs})
        assert r.status_code == 409 and "ui/chat" in r.text
        assert api.get("/api/v1/prompts/ui/chat").json()["latest_version"] == 1
        # Cross-site posts are refused.
        r = c.post("/prompts/new", data={"name": "ui/evil", "template": "x"}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert api.get("/api/v1/prompts/ui/evil").status_code == 404


def test_new_version_prefilled_and_saved(prompts: LiveServer) -> None:
    with ui(prompts) as c, prompts.client() as api:
        assert 'href="/prompts/qa-prompt/versions/new"' in c.get("/prompts/qa-prompt").text
        form = c.get("/prompts/qa-prompt/versions/new")
        assert form.status_code == 200 and "v4" in form.text
        latest = api.get("/api/v1/prompts/qa-prompt/versions/3").json()
        template = re.search(r'<textarea id="np-template"[^>]*>(.*?)</textarea>', form.text, re.S)
        config = re.search(r'<textarea id="np-config"[^>]*>(.*?)</textarea>', form.text, re.S)
        assert template and config
        import html as _html
        import json

        assert json.loads(_html.unescape(template.group(1))) == latest["prompt"]
        assert json.loads(_html.unescape(config.group(1))) == latest["config"]
        assert 'name="base_version" value="3"' in form.text
        new_config = dict(latest["config"], temperature=0.9)
        r = c.post("/prompts/qa-prompt/versions/new", data={
            "type": "chat", "template": _html.unescape(template.group(1)), "config": json.dumps(new_config),
            "commit_message": "warmer", "base_version": "3"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/prompts/qa-prompt/versions/4?created=1"
        assert "v4" in c.get(r.headers["location"]).text
        assert "v4" in c.get("/prompts/qa-prompt").text
        got = api.get("/api/v1/prompts/qa-prompt").json()
        assert got["latest_version"] == 4
        v4 = api.get("/api/v1/prompts/qa-prompt/versions/4").json()
        assert v4["prompt"] == latest["prompt"] and v4["config"]["temperature"] == 0.9 and v4["commit_message"] == "warmer"
        # A stale form (based on v3) is refused with the API's message, the input kept.
        r = c.post("/prompts/qa-prompt/versions/new", data={"type": "chat", "template": MSGS, "base_version": "3",
                                                            "commit_message": "stale"})
        assert r.status_code == 409 and "based on version 3" in r.text and 'value="stale"' in r.text
        assert c.get("/prompts/nope/versions/new").status_code == 404


def test_bad_templates_show_the_error_and_keep_the_input(prompts: LiveServer) -> None:
    with ui(prompts) as c, prompts.client() as api:
        r = c.post("/prompts/new", data={"name": "ui/bad", "type": "text", "template": "Hello {{name",
                                         "commit_message": "keep me"})
        assert r.status_code == 400 and "line 1, column 7" in r.text and "never closed" in r.text
        assert "Hello {{name</textarea>" in r.text and 'value="keep me"' in r.text and 'value="ui/bad"' in r.text
        r = c.post("/prompts/new", data={"name": "ui/bad", "type": "chat", "template": '[{"role": "user",\n "content": }]'})
        assert r.status_code == 400 and "not valid JSON at line 2, column 13" in r.text
        assert "&#34;content&#34;: }]</textarea>" in r.text
        r = c.post("/prompts/new", data={"name": "ui/bad", "type": "chat", "template": '{"role": "user"}'})
        assert r.status_code == 400 and "JSON list of messages" in r.text
        r = c.post("/prompts/new", data={"name": "ui/bad", "type": "chat", "template": '[{"content": "x"}]'})
        assert r.status_code == 400 and "needs a role" in r.text
        r = c.post("/prompts/new", data={"name": "ui/bad", "template": "x", "config": "{bad"})
        assert r.status_code == 400 and "config is not valid JSON at line 1, column 2" in r.text
        r = c.post("/prompts/new", data={"name": "ui/bad", "template": "x", "config": "[1]"})
        assert r.status_code == 400 and "config must be an object" in r.text
        r = c.post("/prompts/new", data={"name": "a/versions", "template": "x"})
        assert r.status_code == 400 and "reserved" in r.text
        assert api.get("/api/v1/prompts/ui/bad").status_code == 404


def test_creating_needs_a_member_or_admin_key(prompts: LiveServer) -> None:
    store, pid = prompts.store, prompts.keys.project_id
    member = store.projects.create_key(pid, role="member").secret_key
    viewer = store.projects.create_key(pid, role="viewer").secret_key
    th = _remote_server(store)
    try:
        with httpx.Client(base_url=th.url, timeout=30, headers={"accept": "text/html"}) as c:
            c.post("/login", data={"secret_key": viewer})
            assert "New prompt" not in c.get("/prompts").text
            assert "New version" not in c.get("/prompts/qa-prompt").text
            for path in ("/prompts/new", "/prompts/qa-prompt/versions/new"):
                assert c.get(path).status_code == 403
                r = c.post(path, data={"name": "ui/viewer", "template": "x"})
                assert r.status_code == 403 and "a key with role &#39;viewer&#39; cannot change prompts" in r.text
            c.cookies.clear()
            c.post("/login", data={"secret_key": member})
            r = c.post("/prompts/new", data={"name": "ui/member", "template": "x"}, follow_redirects=False)
            assert r.status_code == 303
            # A member cannot point the protected production label at it: the API's message.
            r = c.post("/prompts/qa-prompt/versions/new", data={"type": "chat", "template": MSGS,
                                                                "labels": "production"})
            assert r.status_code == 403 and "protected" in r.text
        with prompts.client() as api:
            assert api.get("/api/v1/prompts/ui/viewer").status_code == 404
            assert api.get("/api/v1/prompts/ui/member/versions/1").json()["created_by"] is not None
            assert api.get("/api/v1/prompts/qa-prompt").json()["latest_version"] == 3
    finally:
        th.stop()


def test_created_content_is_escaped(prompts: LiveServer) -> None:
    with ui(prompts) as c:
        r = c.post("/prompts/new", data={"name": "ui/xss", "template": XSS_TEMPLATE, "commit_message": XSS_COMMIT,
                                         "tags": XSS_TAG, "config": '{"<k>": "<v onclick=alert(3)>"}'},
                   follow_redirects=False)
        assert r.status_code == 303, r.text[:2000]
        pages = [c.get(r.headers["location"]).text, c.get("/prompts/ui/xss/versions/new").text,
                 c.post("/prompts/new", data={"name": XSS_NAME, "template": XSS_TEMPLATE + " {{",
                                              "commit_message": XSS_COMMIT}).text]
    for html in pages:
        for bad in (XSS_TAG, XSS_COMMIT, XSS_NAME, "<script>alert('xss-template')", "<v onclick"):
            assert bad not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(" in pages[1]

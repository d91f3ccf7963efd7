"""The web UI's pages, server side: rendering, filters, escaping, errors, auth, keys, scores."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerThread, make_project
from tests.ui.seed import (
    BIG_STRING_CHARS,
    XSS_INPUT,
    XSS_NAME,
    XSS_TAG,
    XSS_USER,
    seed,
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
        # Roots only, with a lazy children link; ids are copyable.
        assert 'data-span-id="tr-paris-root"' in html and 'data-span-id="tr-paris-llm"' not in html
        assert 'aria-expanded="false"' in html and "children?parent_id=tr-paris-root" in html
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

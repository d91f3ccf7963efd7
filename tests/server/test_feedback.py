"""``POST /api/v1/feedback``: the public key alone writes feedback scores and nothing else;
rate limit, CORS, validation; and ``podium.feedback`` in the SDK. A real server on each database."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podium.server.routes.feedback import FeedbackLimiter
from tests.conftest import LiveServer, ProjectKeys, ServerThread

ORIGIN = "https://app.example.com"
RATE = 5


@pytest.fixture
def fb(store: Any, project: ProjectKeys) -> Iterator[LiveServer]:
    from podium.config import Settings
    from podium.server.app import create_app

    app = create_app(Settings(feedback_cors_origins=f"{ORIGIN}, https://other.example", feedback_rate=RATE),
                     store=store)
    th = ServerThread(app).start()
    yield LiveServer(th.url, store, project, app, th)
    th.stop()


def _pk(keys: ProjectKeys) -> dict[str, str]:
    return {"x-podium-public-key": keys.public_key}


def _scores(server: LiveServer, trace_id: str, n: int) -> list[dict[str, Any]]:
    """The trace's scores once ``n`` have been written (the writer is asynchronous)."""
    deadline = time.monotonic() + 10
    with server.client() as c:
        while True:
            data = c.get("/api/v1/scores", params={"trace_id": trace_id}).json()["data"]
            if len(data) >= n or time.monotonic() > deadline:
                return list(data)
            time.sleep(0.05)


def _assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def test_public_key_alone_writes_a_feedback_score(fb: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        r1 = c.post("/api/v1/feedback", headers=_pk(fb.keys),
                    json={"trace_id": tid, "value": "up", "comment": "great", "user_id": "u-1"})
        r2 = c.post("/api/v1/feedback", headers={"authorization": f"Bearer {fb.keys.public_key}"},
                    json={"trace_id": tid, "value": 3.5, "name": "stars", "metadata": {"screen": "chat"}})
    assert r1.status_code == 202 and r2.status_code == 202, (r1.text, r2.text)
    assert set(r1.json()) == {"id"}  # nothing read back
    got = {s["id"]: s for s in _scores(fb, tid, 2)}
    up, stars = got[r1.json()["id"]], got[r2.json()["id"]]
    assert up["source"] == stars["source"] == "feedback"
    assert up["name"] == "user-feedback" and up["data_type"] == "boolean" and up["value"] == 1.0
    assert up["comment"] == "great" and up["metadata"] == {"user_id": "u-1"}
    assert stars["name"] == "stars" and stars["value"] == 3.5 and stars["metadata"] == {"screen": "chat"}


def test_down_is_zero_and_full_keys_work_too(fb: LiveServer) -> None:
    tid = uuid.uuid4().hex
    with fb.client() as c:  # Basic public:secret
        r = c.post("/api/v1/feedback", json={"trace_id": tid, "value": "down"})
    assert r.status_code == 202, r.text
    [s] = _scores(fb, tid, 1)
    assert s["value"] == 0.0 and s["source"] == "feedback"


def test_bare_public_key_is_refused_everywhere_else(fb: LiveServer) -> None:
    pk = fb.keys.public_key
    ways = [{"authorization": f"Bearer {pk}"}, {"x-podium-public-key": pk},
            {"authorization": httpx.BasicAuth(pk, "")._auth_header}]
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        for headers in ways:
            _assert_error(c.get("/api/v1/scores", headers=headers), 401, "unauthorized")
            _assert_error(c.get("/api/v1/traces", headers=headers), 401, "unauthorized")
            _assert_error(c.post("/api/v1/ingest", headers=headers, json={"batch": []}), 401, "unauthorized")
            _assert_error(c.post("/api/v1/scores", headers=headers,
                                 json={"name": "x", "value": 1, "trace_id": "t1"}), 401, "unauthorized")


def test_unknown_revoked_and_missing_keys_are_refused(fb: LiveServer) -> None:
    other = fb.store.projects.create_key(fb.keys.project_id, role="ingest")
    fb.store.projects.revoke_key(fb.keys.project_id, other.key.public_key)
    fb.app.state.podium.auth.invalidate()
    body = {"trace_id": "t1", "value": 1}
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        err = _assert_error(c.post("/api/v1/feedback", json=body), 401, "unauthorized")
        assert "x-podium-public-key" in err["message"]
        _assert_error(c.post("/api/v1/feedback", json=body, headers={"x-podium-public-key": "pk-nope"}),
                      401, "unauthorized")
        _assert_error(c.post("/api/v1/feedback", json=body, headers={"x-podium-public-key": other.key.public_key}),
                      401, "unauthorized")


def test_viewer_and_gateway_public_keys_cannot_send_feedback(fb: LiveServer) -> None:
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        for role in ("viewer", "gateway"):
            k = fb.store.projects.create_key(fb.keys.project_id, role=role)
            err = _assert_error(c.post("/api/v1/feedback", headers={"x-podium-public-key": k.key.public_key},
                                       json={"trace_id": "t1", "value": 1}), 403, "forbidden")
            assert "ingest" in err["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": "up"}, "trace_id"),
        ({"trace_id": "t1"}, "value"),
        ({"trace_id": "t1", "value": "sideways"}, "value"),
        ({"trace_id": "t1", "value": 1, "id": "mine"}, "id"),  # no ids: feedback never replaces a score
        ({"trace_id": "bad id!", "value": 1}, "trace_id"),
        ({"trace_id": "t1", "value": 1, "name": ""}, "name"),
    ],
)
def test_bad_bodies_get_400_in_the_pinned_shape(fb: LiveServer, body: dict[str, Any], field: str) -> None:
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        err = _assert_error(c.post("/api/v1/feedback", headers=_pk(fb.keys), json=body), 400, "validation_error")
    assert err["details"] and err["details"][0]["field"].startswith(field), err
    assert "trace_id" in err["message"] and "up" in err["message"]  # says what to send


def test_not_json_and_too_big(fb: LiveServer) -> None:
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        _assert_error(c.post("/api/v1/feedback", headers={**_pk(fb.keys), "content-type": "application/json"},
                             content=b"{nope"), 400, "bad_request")
        _assert_error(c.post("/api/v1/feedback", headers=_pk(fb.keys), json=[1]), 400, "bad_request")
        big = {"trace_id": "t1", "value": 1, "comment": "x" * 3000, "metadata": {"blob": "y" * 20_000}}
        _assert_error(c.post("/api/v1/feedback", headers=_pk(fb.keys), json=big), 413, "payload_too_large")


def test_rate_limit_per_public_key_answers_429_with_retry_after(fb: LiveServer) -> None:
    k = fb.store.projects.create_key(fb.keys.project_id, role="ingest")
    statuses = []
    with httpx.Client(base_url=fb.url, timeout=30, headers={"origin": ORIGIN}) as c:
        for _ in range(RATE + 2):
            r = c.post("/api/v1/feedback", headers={"x-podium-public-key": k.key.public_key},
                       json={"trace_id": "t-rate", "value": 1})
            statuses.append(r.status_code)
        assert statuses[:RATE] == [202] * RATE and statuses[RATE:] == [429, 429], statuses
        err = _assert_error(r, 429, "rate_limited")
        assert "PODIUM_FEEDBACK_RATE" in err["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60 // RATE + 1
        assert r.headers["access-control-allow-origin"] == ORIGIN  # browsers can read the refusal
        # Another key is not limited by this one's bucket.
        assert c.post("/api/v1/feedback", headers=_pk(fb.keys), json={"trace_id": "t-rate", "value": 1}
                      ).status_code == 202


def test_token_bucket_refills() -> None:
    lim = FeedbackLimiter(60)  # one a second
    key = ("pk-a", "1.2.3.4")
    assert all(lim.take(key, now=100.0) == 0 for _ in range(60))
    assert lim.take(key, now=100.0) == pytest.approx(1.0)
    assert lim.take(key, now=101.0) == 0
    assert lim.take(("pk-a", "5.6.7.8"), now=101.0) == 0  # per client IP


def test_cors_preflight_and_headers_only_for_configured_origins(fb: LiveServer) -> None:
    pre = {"access-control-request-method": "POST",
           "access-control-request-headers": "content-type, x-podium-public-key"}
    with httpx.Client(base_url=fb.url, timeout=30) as c:
        ok = c.options("/api/v1/feedback", headers={**pre, "origin": ORIGIN})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "x-podium-public-key" in ok.headers["access-control-allow-headers"]
        bad = c.options("/api/v1/feedback", headers={**pre, "origin": "https://evil.example"})
        assert not [h for h in bad.headers if h.startswith("access-control-")], bad.headers
        r = c.post("/api/v1/feedback", headers={**_pk(fb.keys), "origin": ORIGIN}, json={"trace_id": "t", "value": 1})
        assert r.status_code == 202 and r.headers["access-control-allow-origin"] == ORIGIN
        r = c.post("/api/v1/feedback", headers={**_pk(fb.keys), "origin": "https://evil.example"},
                   json={"trace_id": "t", "value": 1})
        assert "access-control-allow-origin" not in r.headers
        # Errors carry the header too, so the page can read them.
        r = c.post("/api/v1/feedback", headers={**_pk(fb.keys), "origin": ORIGIN}, json={"value": 1})
        assert r.status_code == 400 and r.headers["access-control-allow-origin"] == ORIGIN


def test_no_cors_headers_by_default(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.options("/api/v1/feedback", headers={"origin": ORIGIN, "access-control-request-method": "POST"})
        assert r.status_code == 204 and "access-control-allow-origin" not in r.headers
        r = c.post("/api/v1/feedback", headers={**_pk(server.keys), "origin": ORIGIN},
                   json={"trace_id": "t", "value": True})
        assert r.status_code == 202 and "access-control-allow-origin" not in r.headers


def test_wildcard_origin(store: Any, project: ProjectKeys) -> None:
    from podium.config import Settings
    from podium.server.app import create_app

    th = ServerThread(create_app(Settings(feedback_cors_origins="*"), store=store)).start()
    try:
        r = httpx.options(th.url + "/api/v1/feedback", headers={"origin": "https://any.example",
                                                                 "access-control-request-method": "POST"})
        assert r.headers["access-control-allow-origin"] == "*"
    finally:
        th.stop()


def test_sdk_feedback_writes_the_score(fb: LiveServer) -> None:
    import podium

    tid = uuid.uuid4().hex
    client = podium.Podium(base_url=fb.url, public_key=fb.keys.public_key, secret_key=fb.keys.secret_key)
    try:
        sid = client.feedback(tid, "up", comment="nice", user_id="u-9")
        assert sid is not None
        assert client.feedback(tid, "sideways") is None  # invalid: a warning, no exception
        result = client.flush(10)
        assert result.sent >= 1 and result.failed == 0, result
    finally:
        client.shutdown()
    [s] = _scores(fb, tid, 1)
    assert s["id"] == sid and s["source"] == "feedback" and s["value"] == 1.0
    assert s["comment"] == "nice" and s["metadata"] == {"user_id": "u-9"}


def test_sdk_feedback_never_raises_on_a_bad_server() -> None:
    import podium

    client = podium.Podium(base_url="http://127.0.0.1:1", public_key="pk-x", secret_key="sk-x",
                           max_retries=0, timeout=1)
    try:
        assert client.feedback("t1", "down") is not None
        result = client.flush(10)
        assert result.sent == 0 and result.dropped + result.failed == 1, result
    finally:
        client.shutdown()
    # The module-level function never raises either (the default client has no keys: dropped and counted).
    before = podium.get_client().counters().dropped
    try:
        podium.feedback("t1", True)
        assert podium.get_client().counters().dropped == before + 1
    finally:
        podium.shutdown(1)


def test_the_docs_snippet_is_under_1_kb_and_calls_this_route() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "feedback.md").read_text(encoding="utf-8")
    snippet = re.search(r"```html\n(.*?)```", doc, re.S)
    assert snippet is not None
    js = snippet.group(1)
    assert len(js.encode()) <= 1024, len(js.encode())
    for must in ('"/api/v1/feedback"', '"x-podium-public-key"', "trace_id", 'method: "POST"'):
        assert must in js, must

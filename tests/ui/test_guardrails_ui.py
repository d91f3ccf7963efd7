"""Guardrails in the UI: a blocked decision with its reason on the trace page, the guardrails
page's rates and rule table, *Mark wrong* (a score and a dataset item, read back through the
REST API), the project policy box, and roles. One browser test; the rest server side."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui.conftest import VIEWPORT, Watch
from tests.ui.guard_seed import INJECTION, SECRET_TEXT, seed_guardrails

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"  # read at import (podium_home clears PODIUM_*)


@pytest.fixture
def guarded(server: LiveServer) -> LiveServer:
    with server.client() as c:
        seed_guardrails(c)
    return server


def _bearer(secret: str) -> dict[str, str]:
    return {"accept": "text/html", "authorization": f"Bearer {secret}"}


@pytest.mark.integration
def test_blocked_decision_page_and_mark_wrong_in_the_browser(guarded: LiveServer, browser: Any) -> None:
    from playwright.sync_api import expect

    url = guarded.url
    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = ctx.new_page()
    watch = Watch(page)

    # The trace: the guardrail span is marked blocked in the tree; its detail says why.
    page.goto(url + "/traces/gr-block-1")
    row = page.locator('li[data-span-id="gr-block-1-guard"]')
    expect(row.locator(".guard-action")).to_have_text("blocked")
    row.locator(".span-name").click()
    decision = page.get_by_test_id("guard-decision")
    expect(decision.get_by_test_id("guard-action").first).to_have_text("block")
    expect(decision.get_by_test_id("guard-blocked-by")).to_have_text("prompt-injection")
    expect(decision.get_by_test_id("guard-reason")).to_contain_text(
        "guardrail 'prompt-injection' (prompt-injection) block: instruction override")
    inj = decision.locator('tr[data-rule="prompt-injection"]')
    expect(inj).to_contain_text("0.97")
    expect(inj).to_contain_text("ignore-previous")  # the finding's label, never its text
    assert SECRET_TEXT not in page.content()
    if TAKE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "guardrail-trace.png"), full_page=True)

    # The guardrails page: seven decisions, two blocked, per-rule numbers.
    page.get_by_role("link", name="Guardrails").click()
    expect(page.get_by_test_id("guard-total")).to_have_text("7")
    expect(page.get_by_test_id("guard-rate-block")).to_have_text("28.6%")
    expect(page.get_by_test_id("guard-rate-redact")).to_have_text("14.3%")
    expect(page.get_by_test_id("guard-rate-flag")).to_have_text("14.3%")
    r = page.locator('tr[data-rule="prompt-injection"][data-kind="input"]')
    for col, text in (("runs", "6"), ("blocked", "2"), ("errors", "0"), ("p50", "3 ms"), ("p95", "8 ms")):
        expect(r.locator(f'td[data-col="{col}"]')).to_have_text(text)
    expect(page.locator('tr[data-rule="groundedness"] td[data-col="timeouts"]')).to_have_text("1")
    recent = page.locator(".guard-recent > li")
    expect(recent).to_have_count(4)

    # Mark the second block wrong (htmx: the form is replaced by the result).
    item = page.locator('.guard-recent > li[data-span-id="gr-block-2-guard"]')
    item.get_by_label("Comment (optional)").fill("a security question, not an attack")
    item.get_by_role("button", name="Mark wrong").click()
    expect(item.get_by_test_id("guard-marked")).to_contain_text("should have been allow")
    page.reload()
    expect(page.get_by_test_id("guard-fp")).to_have_text("1")
    expect(page.locator('tr[data-rule="prompt-injection"][data-kind="input"] td[data-col="fp"]')).to_have_text("1")
    expect(item.get_by_test_id("guard-is-marked")).to_be_visible()
    # The trace page says so too, instead of offering the form again.
    page.goto(url + "/traces/gr-block-2?span=gr-block-2-guard")
    expect(page.get_by_test_id("guard-decision").get_by_test_id("guard-is-marked")).to_contain_text(
        "should have been allow — a security question")
    expect(page.get_by_test_id("guard-decision").get_by_role("button", name="Mark wrong")).to_have_count(0)
    page.goto(url + "/guardrails")

    # The policy box: turn guardrails off for the project, then follow gateway.yaml again.
    page.select_option("#guard-policy-select", "off")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("guard-effective")).to_contain_text("no policy")
    if TAKE_SHOTS:
        page.screenshot(path=str(SHOTS / "guardrails.png"), full_page=True)
    with guarded.client() as api:
        assert api.get("/api/v1/guardrails/policies").json()["default"]["project"] == "off"
    page.select_option("#guard-policy-select", "(file)")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("guard-effective")).to_contain_text("project setting: none")

    # What Mark wrong recorded, read back through the REST API.
    with guarded.client() as api:
        scores = api.get("/api/v1/scores", params={"name": "guardrail.false_positive"}).json()["data"]
        assert len(scores) == 1
        s = scores[0]
        assert (s["trace_id"], s["span_id"], s["value"], s["source"]) == ("gr-block-2", "gr-block-2-guard", True,
                                                                          "human")
        assert s["comment"] == "a security question, not an attack"
        items = api.get("/api/v1/datasets/guardrail-reviews/items").json()["data"]
        assert len(items) == 1
        it = items[0]
        assert it["input"] == INJECTION and it["expected"] == {"action": "allow"}
        assert {k: it["metadata"][k] for k in ("policy", "rule", "scanner", "trace_id", "span_id")} == {
            "policy": "default", "rule": "prompt-injection", "scanner": "prompt-injection",
            "trace_id": "gr-block-2", "span_id": "gr-block-2-guard"}
        assert it["source_trace_id"] == "gr-block-2"
    assert not watch.errors and not watch.dialogs, watch.errors + watch.dialogs
    ctx.close()


def test_mark_wrong_roles_and_errors(guarded: LiveServer) -> None:
    store, pid = guarded.store, guarded.keys.project_id
    viewer = store.projects.create_key(pid, role="viewer").secret_key
    member = store.projects.create_key(pid, role="member").secret_key
    form = {"trace_id": "gr-block-1", "span_id": "gr-block-1-guard", "expected": "flag"}
    with httpx.Client(base_url=guarded.url, timeout=30, headers=_bearer(viewer)) as c:
        page = c.get("/guardrails", params={"range": "7d"})
        assert page.status_code == 200 and "Mark wrong</button>" not in page.text
        assert "Only admin keys change the policy" in page.text
        r = c.post("/guardrails/mark", data=form)
        assert r.status_code == 403 and "cannot mark guardrail decisions wrong" in r.text
        assert c.post("/guardrails/policy", data={"policy": "off"}).status_code == 403
    with httpx.Client(base_url=guarded.url, timeout=30, headers=_bearer(member)) as c:
        assert "Mark wrong</button>" in c.get("/guardrails").text
        # Cross-site posts are refused; a span that is no guardrail decision, or "what it already did", is 400.
        assert c.post("/guardrails/mark", data=form, headers={"Origin": "https://evil.example"}).status_code == 403
        bad = c.post("/guardrails/mark", data={**form, "span_id": "gr-ok-1-llm", "trace_id": "gr-ok-1"})
        assert bad.status_code == 400 and "only guardrail spans can be marked wrong" in bad.text
        same = c.post("/guardrails/mark", data={**form, "expected": "block"}, headers={"HX-Request": "true"})
        assert same.status_code == 400 and "already decided" in same.text
        assert c.post("/guardrails/mark", data={**form, "span_id": "nope"}).status_code == 404
        # A member may mark: the plain form redirects back; marking again replaces, not adds.
        for _ in range(2):
            r = c.post("/guardrails/mark", data={**form, "next": "/guardrails?range=7d"}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/guardrails?range=7d&marked=")
        assert c.post("/guardrails/policy", data={"policy": "off"}).status_code == 403  # admin only
    with guarded.client() as api:
        scores = api.get("/api/v1/scores", params={"name": "guardrail.false_positive"}).json()["data"]
        assert [(s["span_id"], s["metadata"]["expected"]) for s in scores] == [("gr-block-1-guard", "flag")]
        items = api.get("/api/v1/datasets/guardrail-reviews/items").json()["data"]
        assert [i["expected"] for i in items] == [{"action": "flag"}]
    # The admin's policy box names the API's error for an unknown policy on the page.
    with httpx.Client(base_url=guarded.url, timeout=30, headers={"accept": "text/html"}) as c:
        r = c.post("/guardrails/policy", data={"policy": "no-such-policy"})
        assert r.status_code == 400 and "unknown guardrail policy" in r.text


def test_hostile_and_malformed_decisions_render_escaped(server: LiveServer) -> None:
    xss = "<script>alert('guard')</script>"
    t0 = "2026-01-01T00:00:00Z"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    spans = [
        {"id": "h-guard", "trace_id": "h", "name": "guardrail.input", "kind": "guardrail", "start_time": now,
         "status": "error", "input": xss, "output": {"action": "block", "reason": xss},
         "attributes": {"podium.guardrail.action": "block", "podium.guardrail.policy": xss,
                        "podium.guardrail.blocked_by": xss,
                        "podium.guardrail.outcomes": [{"rule": xss, "scanner": xss, "verdict": "fail", "score": 1,
                                                       "threshold": 0.5, "action": "block", "latency_ms": 2,
                                                       "findings": [{"label": xss, "start": 0, "end": 3}],
                                                       "detail": xss}]}},
        # Not what record.span_fields writes: shown as far as it makes sense, never a 500.
        {"id": "m-guard", "trace_id": "m", "name": "guardrail.output", "kind": "guardrail", "start_time": now,
         "status": "error", "output": "nonsense",
         "attributes": {"podium.guardrail.action": "explode", "podium.guardrail.outcomes": {"not": "a list"}}},
        {"id": "old", "trace_id": "old", "name": "guardrail.input", "kind": "guardrail", "start_time": t0},
    ]
    with server.client() as api:
        r = api.post("/api/v1/ingest", json={"batch": [{"type": "span", "body": s} for s in spans]})
        assert r.status_code == 200, r.text
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as c:
        page = c.get("/guardrails")
        assert page.status_code == 200
        assert xss not in page.text and "&lt;script&gt;alert(&#39;guard&#39;)&lt;/script&gt;" in page.text
        assert 'data-testid="guard-total">2<' in page.text  # the 2026-01-01 decision is out of range
        for trace, span in (("h", "h-guard"), ("m", "m-guard")):
            d = c.get(f"/traces/{trace}/spans/{span}", headers={"HX-Request": "true"})
            assert d.status_code == 200 and xss not in d.text and "Guardrail decision" in d.text

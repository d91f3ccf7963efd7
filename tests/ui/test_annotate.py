"""The annotation review screen in a real browser, driven by the keyboard only: pick a category
(1-9) and a yes/no (y), submit (Enter), skip (s), go back (k) and forward (j); the values land
as human scores on the traces (read back through the REST API), the queue page shows progress
and per-annotator counts. Server-side checks of the queue pages and forms follow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.monitor.test_annotations import seed
from tests.ui.conftest import VIEWPORT, Watch

Q = "/api/v1/annotation-queues"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TAKE_SHOTS = os.environ.get("PODIUM_SCREENSHOTS") == "1"  # read at import (podium_home clears PODIUM_*)


def shot(page: Any, name: str) -> None:
    if TAKE_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def queue(server: LiveServer) -> dict[str, Any]:
    seed(server.store, server.keys.project_id, n=3)
    with server.client() as c:
        tone = c.post("/api/v1/score-configs", json={"name": "tone", "data_type": "categorical", "categories": [
            {"label": "rude", "value": 0}, {"label": "neutral", "value": 1}, {"label": "kind", "value": 2}]}).json()
        ok = c.post("/api/v1/score-configs", json={"name": "correct", "data_type": "boolean"}).json()
        r = c.post(Q, json={"name": "Support replies", "score_config_ids": [tone["id"], ok["id"]],
                            "items": [{"trace_id": "t0"}, {"trace_id": "t1"}, {"trace_id": "t2"}]})
        assert r.status_code == 201, r.text
        return dict(r.json())


def _human(server: LiveServer, trace_id: str) -> dict[str, Any]:
    with server.client() as c:
        data = c.get("/api/v1/scores", params={"trace_id": trace_id, "source": "human"}).json()["data"]
    return {s["name"]: s for s in data}


@pytest.mark.one_db
@pytest.mark.integration
def test_review_with_the_keyboard(server: LiveServer, queue: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    ctx.add_cookies([{"name": "podium_annotator", "value": "alice", "url": server.url}])
    page = ctx.new_page()
    watch = Watch(page)
    page.goto(server.url + "/annotate")
    row = page.locator('tr[data-queue="Support replies"]')
    expect(row).to_contain_text("tone, correct")
    shot(page, "annotation-queues")
    row.get_by_role("link", name="Review").click()

    # t0: its input and output; 3 picks "kind" for tone, y answers correct, Enter submits.
    expect(page.get_by_test_id("aq-annotator")).to_have_value("alice")
    expect(page.locator(".aq-subject")).to_contain_text("q0")
    expect(page.locator(".aq-subject")).to_contain_text("a0")
    expect(page.locator("fieldset.aq-active legend")).to_contain_text("tone")
    page.keyboard.press("3")
    expect(page.get_by_label("kind")).to_be_checked()
    shot(page, "annotate-review")
    expect(page.locator("fieldset.aq-active legend")).to_contain_text("correct")
    page.keyboard.press("y")
    page.keyboard.press("Enter")

    # t1 next: skip it with s.
    expect(page.locator(".aq-subject")).to_contain_text("q1")
    scores = _human(server, "t0")
    assert scores["tone"]["value"] == "kind" and scores["correct"]["value"] is True
    assert scores["tone"]["metadata"]["annotator"] == "alice"
    page.keyboard.press("s")

    # t2 next; k goes back to t0 with alice's values, j comes forward to t2 again.
    expect(page.locator(".aq-subject")).to_contain_text("q2")
    page.keyboard.press("k")
    expect(page.locator(".aq-subject")).to_contain_text("q0")
    expect(page.get_by_label("kind")).to_be_checked()
    expect(page.get_by_label("Yes")).to_be_checked()
    page.keyboard.press("j")
    expect(page.locator(".aq-subject")).to_contain_text("q2")
    # Typing in the comment box is not a shortcut.
    page.get_by_label("Comment (optional)").fill("sharp but fair")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("1")
    page.keyboard.press("n")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("aq-empty")).to_be_visible()
    scores = _human(server, "t2")
    assert scores["tone"]["value"] == "rude" and scores["correct"]["value"] is False
    assert scores["tone"]["comment"] == "sharp but fair"
    assert _human(server, "t1") == {}

    # The queue page: all finished, alice reviewed two.
    page.get_by_role("link", name="Support replies").click()
    expect(page.get_by_test_id("aq-percent")).to_have_text("100.0%")
    expect(page.locator('tr[data-annotator="alice"] td[data-col="items"]')).to_have_text("2")
    shot(page, "annotation-queue")
    assert not watch.errors, watch.errors
    ctx.close()


def test_queue_pages_and_forms(server: LiveServer, queue: dict[str, Any]) -> None:
    """Local mode (loopback): create from the traces filter, a bad value shown on the review page,
    to-dataset from the queue page."""
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as c:
        r = c.get("/annotate")
        assert r.status_code == 200 and "Support replies" in r.text and 'href="/annotate"' in r.text
        cfg_ids = queue["score_config_ids"]
        r = c.post("/annotate", data={"name": "prod only", "config": cfg_ids[1], "source": "filter",
                                      "filter": "environment=prod", "limit": "10"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        qid = r.headers["location"].split("/")[2].split("?")[0]
        assert [i["trace_id"] for i in server.store.annotations.list_items(server.keys.project_id, qid)] == [
            "t2", "t0"]
        r = c.post(f"/annotate/{qid}/items", data={"source": "ids", "ids": "t1\nt0\nt1 llm"}, follow_redirects=True)
        assert r.status_code == 200 and "Added 2 items (1 already in the queue)" in r.text
        r = c.post("/annotate", data={"name": "x", "source": "filter"})
        assert r.status_code == 400 and "at least one score config" in r.text
        r = c.post("/annotate", data={"name": "y", "config": cfg_ids[1], "source": "ids", "ids": "t0\nnope-trace"})
        assert r.status_code == 404 and "nope-trace" in r.text
        assert "y" not in [q["name"] for q in server.store.annotations.list_queues(server.keys.project_id)]

        # The annotator's name: set on the review screen, remembered in a cookie, used for the claim.
        r = c.post(f"/annotate/{queue['id']}/annotator", data={"annotator": "carol"}, follow_redirects=False)
        assert r.status_code == 303 and "podium_annotator=carol" in r.headers["set-cookie"]
        c.cookies.set("podium_annotator", "carol")
        r = c.get(f"/annotate/{queue['id']}/review")
        item = server.store.annotations.list_items(server.keys.project_id, queue["id"])[0]
        assert r.status_code == 200 and "q0" in r.text and 'value="carol"' in r.text
        assert item["assigned_to"] == "carol"
        r = c.post(f"/annotate/{queue['id']}/items/{item['id']}", data={f"v:{cfg_ids[0]}": "great"})
        assert r.status_code == 400 and "not a category" in r.text
        r = c.post(f"/annotate/{queue['id']}/items/{item['id']}", data={f"v:{cfg_ids[0]}": "kind"},
                   follow_redirects=False)
        assert r.status_code == 303
        r = c.post(f"/annotate/{queue['id']}/to-dataset", data={"dataset": "support-golden"}, follow_redirects=True)
        assert r.status_code == 200 and "1 added" in r.text, r.text
        r = c.post(f"/annotate/{queue['id']}/to-dataset", data={"dataset": "support-golden"}, follow_redirects=True)
        assert "0 added, 0 updated, 1 unchanged" in r.text
        r = c.get(f"/annotate/{queue['id']}")
        assert "Agreement between annotators" in r.text and "no item has two or more reviews" in r.text

    # Two reviewers on every item: the queue page shows Cohen's kappa and its item count.
    with server.client() as api:
        q2 = api.post(Q, json={"name": "pairs", "score_config_ids": [cfg_ids[1]], "reviews_per_item": 2,
                               "items": [{"trace_id": "t0"}, {"trace_id": "t1"}, {"trace_id": "t2"}]}).json()
        votes = {"ann": [True, True, False], "bob": [True, False, False]}
        for who, vals in votes.items():
            for _ in range(3):
                it = api.post(f"{Q}/{q2['id']}/next", json={"annotator": who}).json()["item"]
                r = api.post(f"{Q}/{q2['id']}/items/{it['id']}/annotations",
                             json={"annotator": who, "values": {"correct": vals[int(it["trace_id"][1:])]}})
                assert r.status_code == 200, r.text
        ag = api.get(f"{Q}/{q2['id']}/agreement").json()["data"][0]
        assert ag["method"] == "cohen" and ag["items"] == 3 and ag["kappa"] == pytest.approx(0.4)
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as c:
        r = c.get(f"/annotate/{q2['id']}")
        assert "Cohen&#39;s kappa" in r.text and ">0.400<" in r.text and 'data-col="items">3<' in r.text


def test_traces_list_links_its_filter_to_a_new_queue(server: LiveServer, queue: dict[str, Any]) -> None:
    with httpx.Client(base_url=server.url, timeout=30, headers={"accept": "text/html"}) as c:
        r = c.get("/traces", params={"environment": "prod"})
        assert 'href="/annotate?filter=environment%3Dprod#new"' in r.text
        r = c.get("/annotate", params={"filter": "environment=prod"})
        assert 'id="aq-filter" name="filter" value="environment=prod"' in r.text

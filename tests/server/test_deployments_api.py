"""Canary deployments through the REST API on a real server (--db all): create, list, one with
its events, the hand actions and their error shapes and roles, the eval-suite targets; and end to
end: a gateway alias on the fake OpenAI upstream split between two registry versions, real
requests through the official openai client, the candidate failing upstream, the worker's canary
job rolling back on its own (baseline-only alias, an alert in the rule's history)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LiveServer, make_project, wait_for
from tests.gateway.fake_upstream import Fail, FakeUpstream

API = "/api/v1/canaries"


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's embedded worker checks canaries every 0.2 s (the default is 5 s)."""
    monkeypatch.setenv("PODIUM_CANARY_CHECK_INTERVAL_S", "0.2")




def register(c: httpx.Client, n: int = 2) -> None:
    for _ in range(n):
        r = c.post("/api/v1/registry/models/bot/versions", json={"artifact": {"kind": "external", "uri": "hf://o/m"}})
        assert r.status_code == 201, r.text
    assert c.put("/api/v1/registry/models/bot/aliases/champion", json={"version": 1}).status_code == 200


def declare(c: httpx.Client, api_base: str = "http://127.0.0.1:9/v1") -> None:
    r = c.put("/api/v1/gateway/models/support", json={"deployments": [
        {"provider": "openai", "model": "registry:/bot@champion", "api_base": api_base, "api_key": "sk-up",
         "max_retries": 0}]})
    assert r.status_code == 201, r.text


def test_api_create_list_get_actions_and_errors(server: LiveServer) -> None:
    with server.client() as c:
        register(c, 3)
        declare(c)
        assert c.put("/api/v1/registry/models/bot/aliases/challenger", json={"version": 3}).status_code == 200
        r = c.post(API, json={"gateway_alias": "support", "model": "bot", "candidate": "challenger",
                              "step_duration_s": 60, "min_requests": 5, "gates": {"max_error_rate_increase": 0.1}})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        got = r.json()
        assert (got["baseline_version"], got["candidate_version"], got["weights"]) == (1, 3, {"baseline": 95,
                                                                                             "candidate": 5})
        assert "original_spec" not in got and got["gates"]["max_error_rate_increase"] == 0.1
        alias = next(a for a in c.get("/api/v1/gateway/models").json()["data"] if a["name"] == "support")
        assert [(d["model"], d["weight"], d["api_key"]) for d in alias["deployments"]] == [
            ("registry:/bot@1", 95.0, "set"), ("registry:/bot@3", 5.0, "set")]
        # one active canary per alias
        dup = c.post(API, json={"gateway_alias": "support", "model": "bot", "candidate": 2})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "conflict"
        assert cid in dup.json()["error"]["message"]
        assert [x["id"] for x in c.get(API, params={"status": "active"}).json()["data"]] == [cid]
        assert c.post(f"{API}/{cid}/pause").json()["status"] == "paused"
        assert c.post(f"{API}/{cid}/pause").status_code == 409
        assert c.post(f"{API}/{cid}/resume").json()["status"] == "running"
        done = c.post(f"{API}/{cid}/promote", json={"reason": "looks good"})
        assert done.status_code == 200 and done.json()["status"] == "promoted", done.text
        assert c.get("/api/v1/registry/models/bot").json()["aliases"]["champion"] == 3
        one = c.get(f"{API}/{cid}").json()
        # (the embedded worker's checks may add "check" events in between)
        assert [e["action"] for e in one["events"] if e["action"] != "check"] == ["start", "pause", "resume",
                                                                                   "promote"]
        assert one["events"][-1]["detail"]["reason"] == "looks good" and one["weights"]["candidate"] == 100
        assert c.post(f"{API}/{cid}/rollback").status_code == 409
        # errors in the pinned shape, each saying what to fix
        bad = [
            ({"gateway_alias": "nope", "model": "bot", "candidate": 2}, 404, "not declared through the API"),
            ({"gateway_alias": "support", "model": "bot", "candidate": 9}, 404, "no version 9"),
            ({"gateway_alias": "support", "model": "bot", "candidate": "ghost"}, 404, "no alias 'ghost'"),
            ({"gateway_alias": "support", "model": "bot", "candidate": 3, "baseline": 3}, 400, "both version 3"),
            ({"gateway_alias": "support", "model": "bot", "candidate": 2, "steps": [5, 50]}, 400, "ending at 100"),
            ({"gateway_alias": "support", "model": "bot", "candidate": 2, "gates": {"nope": 1}}, 400, None),
        ]
        for body, status, text in bad:
            r = c.post(API, json=body)
            assert r.status_code == status, (body, r.text)
            err = r.json()["error"]
            assert set(err) >= {"code", "message"} and (text is None or text in err["message"]), err
        assert c.get(f"{API}/nope").status_code == 404
        # eval targets: two single-deployment aliases the suite runs on, removable
        t = c.post(f"{API}/eval-targets", json={"gateway_alias": "support", "model": "bot", "candidate": 2,
                                                 "baseline": 1})
        assert t.status_code == 200, t.text
        names = {a["name"]: a for a in c.get("/api/v1/gateway/models").json()["data"]}
        assert names["support--canary-candidate"]["deployments"][0]["model"] == "registry:/bot@2"
        assert names["support--canary-candidate"]["deployments"][0]["api_key"] == "set"
        c.post(f"{API}/eval-targets", json={"gateway_alias": "support", "model": "bot", "candidate": 2,
                                            "remove": True})
        assert "support--canary-candidate" not in {a["name"] for a in c.get("/api/v1/gateway/models").json()["data"]}
    # roles: a member may read but not start or act; another project sees nothing
    member = make_project(server.store, "other", role="member")
    with server.client(member) as c2:
        assert c2.get(API).json()["data"] == []
        assert c2.get(f"{API}/{cid}").status_code == 404
    k = server.store.projects.create_key(server.keys.project_id, role="viewer")
    with httpx.Client(base_url=server.url, auth=(k.key.public_key, k.secret_key)) as v:
        assert v.get(API).status_code == 200
        r = v.post(f"{API}/{cid}/rollback")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_candidate_failing_upstream_rolls_back_automatically(server: LiveServer, upstream: FakeUpstream,
                                                            webhook: tuple[str, list[dict[str, Any]]]) -> None:
    """Real requests through the gateway; the fake upstream fails every call for the candidate's
    model name; the router fails over to the baseline (callers see no error), the attempts show
    the candidate's failures, and the server's embedded worker rolls back without anyone touching
    it, notifying the canary's alert rule's webhook."""
    upstream.respond("registry:/bot@2", lambda body: Fail(500, "candidate is broken"))
    server.store.alerts.create_rule(server.keys.project_id, {
        "name": "canary-hook", "enabled": False, "severity": "critical", "kind": "threshold", "op": ">",
        "condition": {"metric": "traces", "agg": "count", "filters": {}}, "threshold": 1e15, "params": {},
        "window_s": 60, "min_samples": 0, "cooldown_s": 0, "renotify_s": 0, "eval_interval_s": 60,
        "channels": [{"type": "webhook", "params": {"url": webhook[0]}}]}, now=datetime.now(UTC))
    with server.client() as c:
        register(c)
        declare(c, upstream.base_url)
        r = c.post(API, json={"gateway_alias": "support", "model": "bot", "candidate": 2, "steps": [50, 100],
                              "step_duration_s": 3600, "min_requests": 5, "alert_rule": "canary-hook"})
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.keys.secret_key, max_retries=0)
    for i in range(30):  # distinct prompts: no answer comes from the gateway's response cache
        out = client.chat.completions.create(model="support", messages=[{"role": "user", "content": f"hi {i}"}])
        assert out.choices[0].message.content  # the baseline answers every call
    assert "registry:/bot@2" in {b["model"] for b in upstream.bodies()}
    with server.client() as c:
        def settled() -> dict[str, Any] | None:
            """The canary once the worker acted: a rollback is followed by its alert event."""
            got: dict[str, Any] = c.get(f"{API}/{cid}").json()
            if got["status"] == "running":
                return None
            if got["status"] == "rolled_back" and "alert" not in [e["action"] for e in got["events"]]:
                return None
            return got

        one = wait_for("the rollback and its alert", settled, timeout=15)
        assert one["status"] == "rolled_back", one["last_check"]
        assert "error rate 100.0%" in one["reason"]
        assert [e["action"] for e in one["events"]][-2:] == ["rollback", "alert"]
        cand = one["last_check"]["candidate"]
        # the router cools the failing candidate down after 3 failures in a row: the breach is
        # called as soon as it is certain (more failures than 5% of min_requests allows)
        assert cand["requests"] >= 1 and cand["errors"] == cand["requests"]
        assert "failed requests of the 5 the step needs" in one["reason"]
        alias = next(a for a in c.get("/api/v1/gateway/models").json()["data"] if a["name"] == "support")
        assert [d["model"] for d in alias["deployments"]] == ["registry:/bot@1"]
        alerts = c.get("/api/v1/alerts").json()["data"]
        assert alerts and alerts[0]["status"] == "fired" and cid in alerts[0]["message"]
        assert alerts[0]["rule_name"] == "canary-hook" and alerts[0]["deliveries"][0]["ok"] is True
    sent = webhook[1][0]["podium"]["alert"]
    assert sent["status"] == "firing" and sent["severity"] == "critical" and sent["labels"]["canary"] == cid
    assert sent["url"].endswith(f"/deployments/{cid}") and "rolled back" in sent["title"]
    # the server's own alias cache was invalidated: no more candidate calls
    upstream.requests.clear()
    for i in range(5):
        client.chat.completions.create(model="support", messages=[{"role": "user", "content": f"again {i}"}])
    assert {b["model"] for b in upstream.bodies()} == {"registry:/bot@1"}


def test_actions_on_unknown_canary(server: LiveServer) -> None:
    with server.client() as c:
        for path in ("rollback", "promote", "pause", "resume", "abort"):
            r = c.post(f"{API}/ffff/{path}")
            assert r.status_code == 404 and "podium deploy list" in r.json()["error"]["message"]

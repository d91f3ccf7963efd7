"""Eval sweeps through the REST API on a real server (--db all): create, trials upserted by number
(a bad trial in a batch keeps the good ones), the Pareto front and dominated flags, errors in the
pinned shape, roles and project isolation; ``decide`` on trials backed by real experiments with
known item scores (the paired bootstrap really runs); ``forecast`` from ingested spans with usage
and a project price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import LiveServer, make_project

API = "/api/v1/eval-sweeps"


def record(c: httpx.Client, name: str, values: list[float]) -> str:
    """A completed experiment whose item ``i<k>`` scored ``values[k]``."""
    r = c.post("/api/v1/experiments", json={"name": name, "scorers": [{"name": "acc", "direction": "higher"}]})
    assert r.status_code == 201, r.text
    eid = r.json()["id"]
    rows = [{"item_id": f"i{k}", "repetition": 0, "position": k, "input": {"q": k}, "output": "x",
             "scores": {"acc": {"value": v, "passed": v >= 0.5, "type": "python", "direction": "higher"}},
             "passed": v >= 0.5, "weighted_score": v, "latency_ms": 10.0} for k, v in enumerate(values)]
    assert c.post(f"/api/v1/experiments/{eid}/items", json={"items": rows}).status_code == 200
    assert c.post(f"/api/v1/experiments/{eid}/finish", json={}).json()["status"] == "completed"
    return eid


def trial(n: int, score: float, cost: float, p95: float, *, model: str = "m", exp: str | None = None,
          status: str = "complete", **config: Any) -> dict[str, Any]:
    return {"number": n, "config": {"model": model, "params": {"temperature": n / 10}, **config},
            "experiment_id": exp, "status": status, "items": 30,
            "metrics": {"score_mean": score, "score_ci": [score - 0.1, score + 0.1], "pass_rate": score,
                        "cost_total": cost * 0.03, "cost_per_1k": cost, "p95_ms": p95, "latency_mean_ms": p95 / 2}}


def new_sweep(c: httpx.Client, **kw: Any) -> dict[str, Any]:
    r = c.post(API, json={"name": "qa sweep", "suite": {"name": "qa", "path": "suite.yaml"},
                          "space": {"model": ["a", "b"]}, "search": {"method": "grid"}, **kw})
    assert r.status_code == 201, r.text
    return dict(r.json())


def err(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return dict(body["error"])


def test_sweep_trials_front_errors_roles_and_isolation(server: LiveServer) -> None:
    with server.client() as c:
        sw = new_sweep(c, budget_usd=2.5)
        sid = sw["id"]
        assert (sw["status"], sw["spent_usd"], sw["budget_usd"], sw["objectives"]) == (
            "running", 0.0, 2.5, ["score", "cost_per_1k", "p95_ms"])
        batch = [trial(0, 0.9, 2.0, 300), trial(1, 0.8, 1.0, 200), trial(2, 0.7, 1.5, 250),  # 2: dominated by 1
                 {"number": 3, "config": {}, "status": "complete"},  # no model: rejected
                 trial(4, 0.5, 0.1, 100, status="failed"), "nope"]
        r = c.post(f"{API}/{sid}/trials", json={"trials": batch})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["accepted"] == 4 and [(x["index"], x["number"]) for x in out["rejected"]] == [(3, 3), (5, None)]
        assert "config.model" in out["rejected"][0]["message"]
        got = c.get(f"{API}/{sid}").json()
        assert got["front"] == [0, 1]
        flags = {t["number"]: (t["front"], t["dominated"]) for t in got["trials"]}
        assert flags == {0: (True, False), 1: (True, False), 2: (False, True), 4: (False, False)}
        # upsert on number: trial 2 improves and joins the front
        assert c.post(f"{API}/{sid}/trials", json={"trials": [trial(2, 0.85, 1.5, 150)]}).json()["accepted"] == 1
        got = c.get(f"{API}/{sid}").json()
        assert got["front"] == [0, 1, 2] and len(got["trials"]) == 4
        r = c.patch(f"{API}/{sid}", json={"status": "completed", "spent_usd": 0.42, "summary": {"trials": 4}})
        assert (r.json()["status"], r.json()["spent_usd"], r.json()["summary"]) == ("completed", 0.42, {"trials": 4})
        listed = c.get(API).json()["data"]
        assert [(s["id"], s["trial_count"]) for s in listed] == [(sid, 4)]
        # errors in the pinned shape
        assert "podium eval sweeps list" in err(c.get(f"{API}/esw-missing"), 404)["message"]
        err(c.post(f"{API}/esw-missing/trials", json={"trials": []}), 404)
        err(c.post(API, json={"name": "x"}), 400)
        err(c.post(API, json={"name": "x", "suite": {"name": "s"}, "objectives": ["speed"]}), 400)
        err(c.patch(f"{API}/{sid}", json={"status": "paused"}), 400)
        err(c.post(f"{API}/{sid}/decide", json={"rule": "best_under_cost"}), 400)
        e = err(c.post(f"{API}/{sid}/decide", json={"rule": "best_under_cost", "max_cost_per_1k": 0.01}), 400)
        assert "lowest is trial 1" in e["message"]
        err(c.get(f"{API}/{sid}/forecast", params={"trial": 99}), 404)
    other = make_project(server.store, "other")
    with server.client(other) as c:
        err(c.get(f"{API}/{sid}"), 404)
        assert c.get(API).json()["data"] == []
        err(c.post(f"{API}/{sid}/trials", json={"trials": [trial(9, 1, 1, 1)]}), 404)
    viewer = server.store.projects.create_key(server.keys.project_id, role="viewer")
    with httpx.Client(base_url=server.url, auth=(viewer.key.public_key, viewer.secret_key)) as c:
        assert c.get(f"{API}/{sid}").status_code == 200
        err(c.post(API, json={"name": "x", "suite": {"name": "s"}}), 403)
        err(c.post(f"{API}/{sid}/trials", json={"trials": []}), 403)
        err(c.patch(f"{API}/{sid}", json={"status": "failed"}), 403)
        assert c.post(f"{API}/{sid}/decide", json={"rule": "cheapest_not_worse"}).status_code == 200


def test_decide_uses_the_paired_bootstrap(server: LiveServer) -> None:
    n = 40
    best = [1.0] * n
    close = [1.0] * (n - 1) + [0.0]  # one item worse: not significant
    bad = [1.0 if k % 2 else 0.0 for k in range(n)]  # half the items worse: significant
    with server.client() as c:
        e_best, e_close, e_bad = record(c, "best", best), record(c, "close", close), record(c, "bad", bad)
        sid = new_sweep(c)["id"]
        trials = [trial(0, 1.0, 5.0, 900, exp=e_best, model="big"), trial(1, 0.975, 2.0, 400, exp=e_close),
                  trial(2, 0.5, 0.5, 100, exp=e_bad, model="tiny")]
        assert c.post(f"{API}/{sid}/trials", json={"trials": trials}).json()["accepted"] == 3
        r = c.post(f"{API}/{sid}/decide", json={"rule": "cheapest_not_worse", "metric": "score"})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["trial"]["number"] == 1 and d["evidence"]["best"]["number"] == 0
        cmp = {x["trial"]: x for x in d["evidence"]["compared"]}
        assert cmp[2]["significant"] is True and cmp[2]["diff"] == -0.5 and cmp[2]["ci"][1] < 0
        assert cmp[1]["significant"] is False and cmp[1]["ci"][0] < 0 <= cmp[1]["ci"][1]
        assert "not significantly below the best (trial 0)" in d["evidence"]["reason"]
        assert "the cheaper trials (2) are significantly worse" in d["evidence"]["reason"]
        d = c.post(f"{API}/{sid}/decide", json={"rule": "fastest_not_worse", "metric": "pass_rate"}).json()
        assert d["trial"]["number"] == 1 and d["metric"] == "pass_rate"
        d = c.post(f"{API}/{sid}/decide", json={"rule": "best_under_cost", "max_cost_per_1k": 1.0}).json()
        assert d["trial"]["number"] == 2 and d["evidence"]["compared"][0]["significant"] is True
        assert "significantly below the best overall" in d["evidence"]["reason"]
        d = c.post(f"{API}/{sid}/decide", json={"rule": "best_under_p95", "max_p95_ms": 500}).json()
        assert d["trial"]["number"] == 1 and "not significantly below" in d["evidence"]["reason"]


def test_forecast_from_traced_traffic_and_the_price_table(server: LiveServer) -> None:
    now = datetime.now(UTC)

    def call(i: int, days_ago: float, **kw: Any) -> dict[str, Any]:
        st = now - timedelta(days=days_ago)
        body = {"id": f"s{i}", "trace_id": f"t{i}", "name": "llm", "kind": "generation",
                "start_time": st.isoformat(), "end_time": (st + timedelta(seconds=1)).isoformat(), **kw}
        return {"type": "span", "body": body}

    # prompt "support": 4 calls over ~2 days, 1,000 input / 200 output tokens on average
    batch = [call(i, 2 - i * 0.5, model="gpt-x", prompt_name="support", prompt_version=1,
                  usage={"input_tokens": 900 + 200 * (i % 2), "output_tokens": 200}) for i in range(4)]
    batch += [call(9, 10, model="gpt-x", prompt_name="support", usage={"input_tokens": 1, "output_tokens": 1})]  # old
    batch += [call(10, 1, model="other-model", usage={"input_tokens": 100, "output_tokens": 10})]
    with server.client() as c:
        assert c.post("/api/v1/ingest", json={"batch": batch}).json()["errors"] == []
        r = c.put("/api/v1/prices/cheap-model", json={"input_per_million": 1.0, "output_per_million": 5.0})
        assert r.status_code == 200, r.text
        sid = new_sweep(c)["id"]
        trials = [trial(0, 0.9, 3.0, 300, model="cheap-model", prompt={"name": "support", "version": 1}),
                  trial(1, 0.9, 3.0, 300, model="other-model"),
                  trial(2, 0.9, 3.0, 300, model="unseen")]
        c.post(f"{API}/{sid}/trials", json={"trials": trials})
        f = c.get(f"{API}/{sid}/forecast", params={"trial": 0}).json()
        assert f["calls"] == 4 and f["traffic"] == "prompt 'support'" and 1.9 < f["days_observed"] < 2.1
        assert f["tokens"] == {"input_mean": 1000.0, "output_mean": 200.0}
        per_call = (1000 * 1.0 + 200 * 5.0) / 1e6
        assert abs(f["cost_per_call_usd"] - per_call) < 1e-12
        assert abs(f["monthly_cost_usd"] - f["calls_per_day"] * 30 * per_call) < 1e-5
        assert "priced with cheap-model" in f["basis"] and "4 traced calls of prompt 'support'" in f["basis"]
        # no prompt: the model's traffic; no price for it: the trial's measured cost per item
        f = c.get(f"{API}/{sid}/forecast", params={"trial": 1}).json()
        assert f["calls"] == 1 and round(f["days_observed"], 2) == 1.0 and f["traffic"] == "model 'other-model'"
        assert f["cost_per_call_usd"] == 3.0 / 1000 and abs(f["monthly_cost_usd"] - 30 * 0.003) < 1e-5
        assert "measured cost" in f["basis"]
        f = c.get(f"{API}/{sid}/forecast", params={"trial": 2}).json()
        assert f["calls"] == 0 and f["monthly_cost_usd"] == 0.0 and "no traced calls" in f["basis"]

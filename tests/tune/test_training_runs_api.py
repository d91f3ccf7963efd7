"""The training-run REST API on a real server (--db all): the run's lifecycle as the trainer
drives it, a steps batch with one bad step (the others stored, the bad one reported), cancel,
resume, sweeps with their trials, errors in the pinned shape and the role checks."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LiveServer, make_project

API = "/api/v1/training-runs"
SWEEPS = "/api/v1/training-sweeps"


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    err: dict[str, Any] = body["error"]
    return err


def test_run_lifecycle_over_rest(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post(API, json={"method": "sft", "base_model": "smollm2", "name": "lr-2e-4",
                              "dataset": {"name": "support-sft", "version": 3},
                              "params": {"training": {"learning_rate": 2e-4}}, "hardware": {"device": "cpu"},
                              "tags": ["demo"]})
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["status"] == "running" and run["metrics"] == {} and run["cancel_requested"] is False
        assert "steps" not in run and run["dataset"] == {"name": "support-sft", "version": 3}
        rid = run["id"]
        steps = [{"step": 1, "loss": 2.4, "learning_rate": 2e-4, "epoch": 0.1},
                 {"step": "two", "loss": 2.2},
                 {"step": 3, "loss": "NaN?"},
                 {"step": 4, "loss": 2.0, "rewards/chosen": 0.5, "grad_norm": None, "other": None},
                 "not a step"]
        r = c.post(f"{API}/{rid}/steps", json={"steps": steps})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["accepted"] == 2 and out["cancel_requested"] is False
        assert [(x["index"], x["step"]) for x in out["rejected"]] == [(1, None), (2, 3), (4, None)]
        assert "step" in out["rejected"][0]["message"] and "loss" in out["rejected"][1]["message"]
        got = c.get(f"{API}/{rid}", params={"steps": "true"}).json()
        assert [s["step"] for s in got["steps"]] == [1, 4] and got["steps"][1]["rewards/chosen"] == 0.5
        assert "other" not in got["steps"][1] and got["steps"][1]["grad_norm"] is None
        assert got["last_step"] == 4
        # cancel from the UI/API: the trainer learns it with its next steps report
        assert c.post(f"{API}/{rid}/cancel").json()["cancel_requested"] is True
        assert c.post(f"{API}/{rid}/steps", json={"steps": [{"step": 5, "loss": 1.9}]}).json()["cancel_requested"]
        ended = c.patch(f"{API}/{rid}", json={"status": "cancelled", "duration_s": 3.5}).json()
        assert ended["status"] == "cancelled" and ended["duration_s"] == 3.5
        assert _error(c.post(f"{API}/{rid}/cancel"), 409)["code"] == "conflict"
        resumed = c.patch(f"{API}/{rid}", json={"status": "running"}).json()
        assert resumed["status"] == "running" and resumed["cancel_requested"] is False
        done = c.patch(f"{API}/{rid}", json={"status": "completed", "metrics": {"train_loss": 1.9, "eval_loss": None},
                                             "artifacts": {"adapter_dir": "/runs/x/adapter"}}).json()
        assert done["metrics"] == {"train_loss": 1.9} and done["artifacts"]["adapter_dir"] == "/runs/x/adapter"
        err = _error(c.patch(f"{API}/{rid}", json={"status": "running"}), 409)
        assert "finished" in err["message"]
        assert [x["id"] for x in c.get(API, params={"status": "completed"}).json()["data"]] == [rid]
        assert c.get(API, params={"method": "dpo"}).json()["data"] == []
        # errors in the pinned shape
        assert _error(c.get(f"{API}/run-nope"), 404)["code"] == "not_found"
        assert _error(c.post(API, json={"method": "ppo", "base_model": "x"}), 400)["details"]
        assert _error(c.post(API, json={"method": "sft", "base_model": "x", "surprise": 1}), 400)
        assert _error(c.patch(f"{API}/{rid}", json={"metrics": {"loss": "high"}}), 400)
        assert _error(c.post(f"{API}/run-nope/steps", json={"steps": []}), 404)
        assert _error(c.get(API, params={"limit": 0}), 400)
        assert c.delete(f"{API}/{rid}").status_code == 204
        assert _error(c.get(f"{API}/{rid}"), 404)


def test_sweeps_and_roles_over_rest(server: LiveServer) -> None:
    viewer = make_project(server.store, "viewers")
    vkey = server.store.projects.create_key(server.keys.project_id, role="viewer")
    from tests.conftest import ProjectKeys

    as_viewer = ProjectKeys(server.keys.project_id, vkey.key.public_key, vkey.secret_key)
    with server.client() as c:
        sweep = c.post(SWEEPS, json={"name": "lr", "space": {"training.learning_rate": [1e-4, 2e-4]},
                                     "objective": {"metric": "eval_loss", "direction": "minimize"}})
        assert sweep.status_code == 201, sweep.text
        sid = sweep.json()["id"]
        runs = [c.post(API, json={"method": "sft", "base_model": "smollm2", "sweep_id": sid, "trial": i,
                                  "params": {"training.learning_rate": lr}}).json()
                for i, lr in enumerate((1e-4, 2e-4))]
        assert _error(c.post(API, json={"method": "sft", "base_model": "m", "sweep_id": "sweep-x"}), 404)
        c.patch(f"{API}/{runs[1]['id']}", json={"status": "pruned"})
        p = c.patch(f"{SWEEPS}/{sid}", json={"status": "completed", "best_run_id": runs[0]["id"],
                                             "summary": {"best_value": 1.5}})
        assert p.status_code == 200 and p.json()["best_run_id"] == runs[0]["id"]
        got = c.get(f"{SWEEPS}/{sid}").json()
        assert [(r["trial"], r["status"]) for r in got["runs"]] == [(0, "running"), (1, "pruned")]
        listed = c.get(SWEEPS).json()["data"]
        assert listed[0]["id"] == sid and listed[0]["trials"] == 2 and "runs" not in listed[0]
        assert c.get(API, params={"sweep_id": sid}).json()["data"][0]["trial"] == 0
        assert _error(c.patch(f"{SWEEPS}/{sid}", json={"status": "paused"}), 400)
    with server.client(as_viewer) as v:  # a viewer reads, never writes
        assert v.get(f"{SWEEPS}/{sid}").status_code == 200
        assert _error(v.post(f"{API}/{runs[0]['id']}/cancel"), 403)["code"] == "forbidden"
        assert _error(v.post(API, json={"method": "sft", "base_model": "m"}), 403)
    with server.client(viewer) as o:  # another project sees nothing
        assert o.get(API).json()["data"] == [] and _error(o.get(f"{SWEEPS}/{sid}"), 404)

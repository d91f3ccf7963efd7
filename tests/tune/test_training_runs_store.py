"""Training-run storage on SQLite and PostgreSQL (--db all): a run's record, steps upserted on
their number (a resumed run resends one), the status moves (end, cancel request, resume, no
way back from completed), sweeps and their trials, deletes, and project isolation."""

from __future__ import annotations

from typing import Any

import pytest

from podium.errors import BadRequest, Conflict, NotFound
from tests.conftest import ProjectKeys, make_project


def _run(store: Any, pid: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"method": "sft", "base_model": "smollm2",
                            "params": {"training.learning_rate": 2e-4, "lora.r": 8}}
    return dict(store.training.create_run(pid, **{**args, **kw}))


def test_run_record_and_steps(store: Any, project: ProjectKeys) -> None:
    tr, pid = store.training, project.project_id
    run = _run(store, pid, name="first", dataset={"name": "sft", "version": 2}, hardware={"device": "cpu"},
               tags=["nightly"], actor="alice")
    assert run["status"] == "running" and run["id"].startswith("run-") and run["last_step"] is None
    assert run["dataset"] == {"name": "sft", "version": 2} and run["params"]["lora.r"] == 8
    assert run["cancel_requested"] is False and run["ended_at"] is None and run["created_by"] == "alice"
    out = tr.log_steps(pid, run["id"], [{"step": 1, "loss": 2.5, "learning_rate": 2e-4},
                                        {"step": 2, "loss": 2.1, "learning_rate": 1e-4, "rewards/margins": 0.3}])
    assert out == {"accepted": 2, "cancel_requested": False}
    # a resumed run resends step 2 with other numbers: updated, not duplicated; the trainer logs
    # step 3's loss and its evaluation separately: merged into one step
    tr.log_steps(pid, run["id"], [{"step": 2, "loss": 2.0, "learning_rate": 1e-4}, {"step": 3, "loss": 1.95}])
    tr.log_steps(pid, run["id"], [{"step": 3, "eval_loss": 1.9}])
    steps = tr.steps(pid, run["id"])
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert steps[1]["loss"] == 2.0 and steps[1]["rewards/margins"] == 0.3
    assert steps[2]["loss"] == 1.95 and steps[2]["eval_loss"] == 1.9
    assert tr.log_steps(pid, run["id"], []) == {"accepted": 0, "cancel_requested": False}
    got = tr.get_run(pid, run["id"], steps=True)
    assert got["last_step"] == 3 and len(got["steps"]) == 3
    done = tr.update_run(pid, run["id"], {"status": "completed", "metrics": {"train_loss": 2.0},
                                          "artifacts": {"adapter": "/tmp/a"}, "duration_s": 12.5})
    assert done["status"] == "completed" and done["ended_at"] is not None and done["duration_s"] == 12.5
    merged = tr.update_run(pid, run["id"], {"metrics": {"eval_loss": 1.9}, "artifacts": {"gguf": "/tmp/g"}})
    assert merged["metrics"] == {"train_loss": 2.0, "eval_loss": 1.9}
    assert set(merged["artifacts"]) == {"adapter", "gguf"}
    with pytest.raises(Conflict, match="finished"):
        tr.update_run(pid, run["id"], {"status": "running"})
    with pytest.raises(BadRequest, match="method"):
        _run(store, pid, method="ppo")


def test_cancel_and_resume(store: Any, project: ProjectKeys) -> None:
    tr, pid = store.training, project.project_id
    run = _run(store, pid)
    assert tr.request_cancel(pid, run["id"])["cancel_requested"] is True
    assert tr.log_steps(pid, run["id"], [{"step": 5, "loss": 1.0}])["cancel_requested"] is True
    ended = tr.update_run(pid, run["id"], {"status": "cancelled"})
    assert ended["status"] == "cancelled" and ended["duration_s"] is not None
    with pytest.raises(Conflict, match="not running"):
        tr.request_cancel(pid, run["id"])
    again = tr.update_run(pid, run["id"], {"status": "running"})
    assert again["status"] == "running" and again["cancel_requested"] is False and again["ended_at"] is None
    assert again["last_step"] == 5
    assert tr.update_run(pid, run["id"], {"status": "running"})["status"] == "running"  # retried: a no-op
    failed = tr.update_run(pid, run["id"], {"status": "failed", "error": "CUDA out of memory"})
    assert failed["error"] == "CUDA out of memory"
    assert tr.update_run(pid, run["id"], {"status": "running"})["error"] is None
    with pytest.raises(BadRequest, match="status"):
        tr.update_run(pid, run["id"], {"status": "paused"})
    pruned = tr.update_run(pid, run["id"], {"status": "pruned"})
    with pytest.raises(Conflict):
        tr.update_run(pid, pruned["id"], {"status": "completed"})


def test_sweeps_runs_filters_and_delete(store: Any, project: ProjectKeys) -> None:
    tr, pid = store.training, project.project_id
    sweep = tr.create_sweep(pid, name="lr", space={"training.learning_rate": {"low": 1e-5, "high": 1e-3}},
                            objective={"metric": "eval_loss", "direction": "minimize"})
    assert sweep["status"] == "running" and sweep["best_run_id"] is None
    a = _run(store, pid, sweep_id=sweep["id"], trial=1)
    b = _run(store, pid, sweep_id=sweep["id"], trial=0, method="dpo")
    other = _run(store, pid)
    with pytest.raises(NotFound, match="sweep"):
        _run(store, pid, sweep_id="sweep-missing")
    with pytest.raises(BadRequest, match="not a trial"):
        tr.update_sweep(pid, sweep["id"], {"best_run_id": other["id"]})
    done = tr.update_sweep(pid, sweep["id"], {"status": "completed", "best_run_id": b["id"],
                                              "summary": {"best_value": 1.2}})
    assert done["best_run_id"] == b["id"] and done["summary"] == {"best_value": 1.2}
    full = tr.get_sweep(pid, sweep["id"], runs=True)
    assert [r["trial"] for r in full["runs"]] == [0, 1]
    assert tr.list_sweeps(pid)[0]["trials"] == 2
    assert [r["id"] for r in tr.list_runs(pid, method="dpo")] == [b["id"]]
    assert len(tr.list_runs(pid)) == 3 and len(tr.list_runs(pid, sweep_id=sweep["id"])) == 2
    tr.update_run(pid, a["id"], {"status": "completed"})
    assert [r["id"] for r in tr.list_runs(pid, status="completed")] == [a["id"]]
    tr.log_steps(pid, a["id"], [{"step": 1, "loss": 1.0}])
    tr.delete_run(pid, a["id"])
    with pytest.raises(NotFound):
        tr.steps(pid, a["id"])
    tr.delete_sweep(pid, sweep["id"])
    assert tr.get_run(pid, b["id"])["sweep_id"] == sweep["id"]  # the runs stay


def test_projects_are_isolated(store: Any, project: ProjectKeys) -> None:
    tr = store.training
    other = make_project(store, "other")
    run = _run(store, project.project_id)
    sweep = tr.create_sweep(project.project_id, name="s")
    assert tr.list_runs(other.project_id) == [] and tr.list_sweeps(other.project_id) == []
    for call in (lambda: tr.get_run(other.project_id, run["id"]),
                 lambda: tr.log_steps(other.project_id, run["id"], [{"step": 1}]),
                 lambda: tr.request_cancel(other.project_id, run["id"]),
                 lambda: tr.update_run(other.project_id, run["id"], {"status": "failed"}),
                 lambda: tr.delete_run(other.project_id, run["id"]),
                 lambda: tr.get_sweep(other.project_id, sweep["id"]),
                 lambda: _run(store, other.project_id, sweep_id=sweep["id"])):
        with pytest.raises(NotFound):
            call()
    assert tr.get_run(project.project_id, run["id"])["status"] == "running"

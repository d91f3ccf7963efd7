"""RunTracker against a real running server: start, steps (NaN sent as null), a cancel request
seen by the trainer, finish, resume; the server going away mid-run (log_steps does not raise,
counts what it could not send and sends it when the server is back); a deleted run reported."""

from __future__ import annotations

import logging
import math

import pytest

from podium.cli.run_tracker import RunTracker
from podium.config import Settings
from podium.errors import Conflict, ServiceUnavailable
from tests.conftest import LiveServer, ServerThread, free_port


def _settings(server: LiveServer, url: str | None = None) -> Settings:
    return Settings(base_url=url or server.url, public_key=server.keys.public_key,
                    secret_key=server.keys.secret_key)


def test_tracker_records_a_run(server: LiveServer) -> None:
    s = _settings(server)
    tr = RunTracker.start("sft", "smollm2", {"training.learning_rate": 2e-4}, name="t",
                          dataset={"name": "d", "version": 1}, hardware={"device": "cpu"}, settings=s)
    with tr:
        assert tr.run["status"] == "running"
        assert tr.log_steps([{"step": 1, "loss": 2.0, "learning_rate": 2e-4},
                             {"step": 2, "loss": math.nan, "grad_norm": math.inf}]) is False
        assert tr.sent == 2 and tr.unsent == 0
        tr.update(output_dir="/runs/x", hardware={"torch": "2.x"})
        assert tr.run["output_dir"] == "/runs/x" and tr.run["hardware"] == {"device": "cpu", "torch": "2.x"}
        server.store.training.request_cancel(server.keys.project_id, tr.run_id)  # from the UI
        assert tr.log_steps([{"step": 3, "loss": 1.5}]) is True
        end = tr.finish("cancelled", metrics={"train_loss": 1.5}, duration_s=2.0)
        assert end["status"] == "cancelled" and end["metrics"] == {"train_loss": 1.5}
    steps = server.store.training.steps(server.keys.project_id, tr.run_id)
    assert [x["loss"] for x in steps] == [2.0, None, 1.5] and steps[1]["grad_norm"] is None
    with RunTracker.resume(tr.run_id, settings=s) as again:
        assert again.run["status"] == "running" and again.run["last_step"] == 3
        assert again.log_steps([{"step": 3, "loss": 1.4}]) is False  # resent after the checkpoint
        again.finish("completed")
    with pytest.raises(Conflict, match="finished"):
        RunTracker.resume(tr.run_id, settings=s)
    with RunTracker.start("sft", "m", {}, settings=s) as bad:  # a bad metric does not leave it running
        end = bad.finish("completed", metrics={"note": "not a number"}, duration_s=1.0)
        assert end["status"] == "completed" and end["metrics"] == {} and end["duration_s"] == 1.0
    with pytest.raises(ServiceUnavailable, match="cannot reach"):
        RunTracker.start("sft", "m", {}, settings=_settings(server, f"http://127.0.0.1:{free_port()}"))


def test_server_going_away_mid_run(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    tr = RunTracker.start("dpo", "smollm2", {}, settings=_settings(server))
    assert tr.log_steps([{"step": 1, "loss": 0.69}]) is False
    server.thread.stop()  # the server goes away
    with caplog.at_level(logging.WARNING, logger="podium.tune.tracking"):
        for step in (2, 3, 4):
            assert tr.log_steps([{"step": step, "loss": 0.6}]) is False  # no exception into the loop
    assert tr.unsent == 3 and tr.failures == 3 and tr.sent == 1
    assert sum("cannot reach the server" in r.getMessage() for r in caplog.records) == 1  # warned once
    back = ServerThread(server.app, port=server.thread.port).start()  # back on the same address
    try:
        assert tr.log_steps([{"step": 5, "loss": 0.5}]) is False
        assert tr.unsent == 0 and tr.sent == 5
        server.store.training.delete_run(server.keys.project_id, tr.run_id)
        with caplog.at_level(logging.ERROR, logger="podium.tune.tracking"):
            assert tr.log_steps([{"step": 6, "loss": 0.4}]) is False
        assert tr.gone and tr.dropped == 1 and any("no longer exists" in r.getMessage() for r in caplog.records)
        assert tr.finish("completed")["tracked"] is False
        tr.close()
    finally:
        back.stop()

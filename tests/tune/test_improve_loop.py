"""The improve loop end to end (issue 15, Measure), on the bundled SmolLM2, CPU only, as the
README's step 9 runs it:

production traces with thumbs-up feedback -> an SFT export -> a few LoRA steps (`podium tune
sft`, tracked) -> `podium tune package` (merge, GGUF, Q8_0, registered as a version with its
run and dataset) -> a gateway alias serving `registry:/assistant@champion` through the local
provider -> `podium deploy canary` (the eval-suite gate, then 50% of real traffic through the
official openai client, live gates on the online `says-hello` score) -> promoted: `champion`
moves to the fine-tuned version.

Then the same with a deliberately worse model (the base model with its attention weights
scrambled): the suite gate refuses it; started without the suite, the live gate sees its online
score fall and the worker rolls it back by itself, with an alert and the gateway alias serving
the champion alone. Nobody touches it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from tests.conftest import LiveServer, ProjectKeys, ServerThread, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.one_db, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::FutureWarning")]  # peft reads names transformers 5 deprecates

API = "/api/v1"
runner = CliRunner()

# SmolLM2-135M greets reliably when asked this way (8 of 8 names; "Say hello to Ana." gets 2 of 6).
NAMES = ["Ana", "Bo", "Carla", "Dan", "Eve", "Femi", "Gus", "Hana"]
QUESTIONS = [f"Reply with: Hello, {n}!" for n in NAMES]
SUITE = """\
description: the assistant greets
prompts:
  - id: greet
    raw: "Reply with: Hello, {{who}}!"
providers:
  - id: assistant
    config: {temperature: 0, max_tokens: 24}
defaultTest:
  assert:
    - type: icontains
      value: hello
tests:
  - vars: {who: Ana}
  - vars: {who: Bo}
  - vars: {who: Carla}
  - vars: {who: Dan}
  - vars: {who: Eve}
  - vars: {who: Femi}
"""


def cli(*args: str, code: int = 0) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == code, r.output
    return r.output


@pytest.fixture
def live(store: Any, project: ProjectKeys, hf_base: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """`podium up` with its embedded worker, the canary checked often, alias moves seen at once.
    Its home is the one holding the converted base model (``hf_base``), so `--merged smollm2`
    finds it there as a user's second package would."""
    from podium.config import Settings
    from podium.server.app import create_app

    home = hf_base.parents[2]
    monkeypatch.setenv("PODIUM_HOME", str(home))
    settings = Settings(home=home, canary_check_interval_s=0.3, gateway_registry_ttl=0.3, local_max_models=3,
                        local_threads=1)
    th = ServerThread(create_app(settings, store=store)).start()
    monkeypatch.setenv("PODIUM_BASE_URL", th.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", project.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", project.secret_key)
    try:
        yield LiveServer(th.url, store, project, None, th)
    finally:
        th.stop()


def _production_traffic() -> list[dict[str, Any]]:
    """Eight answered questions, each with a thumbs-up (`user-feedback` = 1), as the SDK sends them."""
    t0 = datetime.now(UTC) - timedelta(hours=1)
    batch: list[dict[str, Any]] = []
    for i, (q, who) in enumerate(zip(QUESTIONS, NAMES, strict=True)):
        st = t0 + timedelta(seconds=10 * i)
        batch.append({"type": "span", "body": {
            "id": f"p{i}-s", "trace_id": f"p{i}", "name": "assistant", "kind": "generation", "model": "local",
            "start_time": st.isoformat(), "end_time": (st + timedelta(seconds=1)).isoformat(),
            "input": [{"role": "user", "content": q}],
            "output": {"role": "assistant", "content": f"Hello, {who}!"}}})
        batch.append({"type": "score", "body": {"id": f"p{i}-fb", "trace_id": f"p{i}", "name": "user-feedback",
                                                "value": 1, "source": "feedback"}})
    return batch


def _scrambled(hf_base: Path, out: Path) -> Path:
    """A deliberately worse model: the base model with noise on its attention and MLP weights."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(hf_base, out)
    [weights] = list(out.glob("*.safetensors"))
    state = load_file(weights)
    gen = torch.Generator().manual_seed(0)
    for k, v in state.items():
        if k.endswith(("proj.weight",)):
            state[k] = v + torch.randn(v.shape, generator=gen) * 0.2
    save_file(state, weights, metadata={"format": "pt"})
    return out


def _chat(client: Any, n: int) -> list[str]:
    """``n`` questions through the gateway alias, as an application would send them."""
    out = []
    for i in range(n):
        r = client.chat.completions.create(model="assistant", max_tokens=24, temperature=0,
                                           messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
        out.append(r.choices[0].message.content or "")
    return out


def _drive(c: Any, client: Any, canary_id: str, until: set[str], timeout: float = 240.0) -> dict[str, Any]:
    """Send traffic while the worker checks the canary, until its status is one of ``until``."""
    deadline = time.monotonic() + timeout
    while True:
        got = c.get(f"{API}/canaries/{canary_id}").json()
        if got["status"] in until:
            return got  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"canary still {got['status']} at step {got.get('step_index')}: {got}"
        _chat(client, 2)


def test_feedback_to_a_promoted_fine_tune_and_a_worse_model_rolled_back(live: LiveServer, hf_base: Path,
                                                                         tmp_path: Path) -> None:
    import openai

    with live.client() as c:
        # 1. Production traces with feedback, then the liked answers as SFT data (a versioned dataset).
        r = c.post(f"{API}/ingest", json={"batch": _production_traffic()})
        assert r.status_code in (200, 207) and not r.json().get("errors"), r.text
        wait_for("the traces stored", lambda: len(c.get(f"{API}/traces", params={"name": "assistant"}).json()["data"])
                 == len(QUESTIONS), timeout=30)
        cli("tune", "export", "--format", "sft", "--where", "user-feedback=1", "--filter", "name=assistant",
            "--dataset", "greetings", "--validation", "0")
        assert c.get(f"{API}/datasets/greetings").json()["item_count"] == len(QUESTIONS)

        # 2. A few LoRA steps on it, tracked as a run (a small learning rate: a careful fine-tune).
        recipe = tmp_path / "sft.yaml"
        recipe.write_text(f"method: sft\nname: greetings-lora\nbase_model: {hf_base}\n"
                          "data: {dataset: greetings, validation: 0}\nlora: {r: 4}\n"
                          "training: {max_steps: 3, max_length: 64, batch_size: 2, learning_rate: 1.0e-5}\n")
        run = json.loads(cli("tune", "sft", str(recipe), "--json"))
        assert run["status"] == "completed" and run["metrics"]["steps"] == 3, run
        steps = c.get(f"{API}/training-runs/{run['id']}", params={"steps": "true"}).json()["steps"]
        assert [s["step"] for s in steps if s.get("loss") is not None] == [1, 2, 3]

        # 3. Register the base model as the champion, and the fine-tune (merged, GGUF, Q8_0) as v2.
        cli("tune", "package", "--register", "assistant", "--merged", "smollm2", "--quant", "q8_0",
            "--alias", "champion")
        cli("tune", "package", "--register", "assistant", "--run", run["id"], "--quant", "q8_0",
            "--alias", "challenger")
        v2 = c.get(f"{API}/registry/models/assistant/versions/2").json()
        assert v2["training_run_id"] == run["id"] and v2["artifact"]["kind"] == "gguf", v2
        assert v2["dataset"] == {"name": "greetings", "version": 1}, v2

        # 4. The application's alias serves the champion through the local provider; an online rule
        #    scores every answer (does it greet?) for the live gates.
        r = c.put(f"{API}/gateway/models/assistant", json={
            "deployments": [{"provider": "local", "model": "registry:/assistant@champion"}]})
        assert r.status_code in (200, 201), r.text
        r = c.post(f"{API}/evaluation-rules", json={
            "name": "greets", "filter": {"name": "gateway assistant"}, "sample_rate": 1, "delay_s": 0,
            "scorers": [{"type": "icontains", "params": {"value": "hello"}, "name": "says-hello"}]})
        assert r.status_code == 201, r.text
        client = openai.OpenAI(base_url=live.url + "/v1", api_key=live.keys.secret_key, max_retries=0, timeout=120)
        assert all("hello" in a.lower() for a in _chat(client, 2))

        suite = tmp_path / "suite.yaml"
        suite.write_text(SUITE)
        canary_args = ("--alias", "assistant", "--model", "assistant", "--steps", "50,100", "--step-duration", "0s",
                       "--min-requests", "3", "--max-p95-ratio", "100", "--json")

        # 5. Canary the fine-tune: the suite gate passes, traffic flows, the gates hold, it is promoted.
        started = json.loads(cli("deploy", "canary", "--candidate", "challenger", "--suite", str(suite), *canary_args))
        assert started["status"] == "running" and started["candidate_version"] == 2, started
        assert not started["suite"]["regressed"], started["suite"]
        done = _drive(c, client, started["id"], {"promoted", "rolled_back"})
        assert done["status"] == "promoted", done
        assert c.get(f"{API}/registry/models/assistant/aliases/champion").json()["version"] == 2
        alias = next(a for a in c.get(f"{API}/gateway/models").json()["data"] if a["name"] == "assistant")
        assert [d["model"] for d in alias["deployments"]] == ["registry:/assistant@2"], alias

        # 6. A deliberately worse model as v3.
        worse = _scrambled(hf_base, tmp_path / "scrambled")
        cli("tune", "package", "--merged", str(worse), "--register", "assistant", "--quant", "q8_0")
        #    The suite gate refuses it before any traffic reaches it ...
        refused = runner.invoke(app, ["deploy", "canary", "--candidate", "3", "--suite", str(suite),
                                      *canary_args[:-1]])
        assert refused.exit_code == 1 and "not started" in refused.output, refused.output
        #    ... and started without the suite, the live gate catches it and the worker rolls it back.
        started = json.loads(cli("deploy", "canary", "--candidate", "3", "--max-score-drop", "0.3", *canary_args))
        done = _drive(c, client, started["id"], {"promoted", "rolled_back"})
        assert done["status"] == "rolled_back", json.dumps(done, indent=1, default=str)
        assert "says-hello" in json.dumps(done.get("last_check") or done), done
        assert c.get(f"{API}/registry/models/assistant/aliases/champion").json()["version"] == 2
        alias = next(a for a in c.get(f"{API}/gateway/models").json()["data"] if a["name"] == "assistant")
        assert [d["model"] for d in alias["deployments"]] == ["registry:/assistant@2"], alias
        events = [e["action"] for e in c.get(f"{API}/canaries/{started['id']}").json()["events"]]
        assert events[0] == "start" and "rollback" in events, events
        fired = c.get(f"{API}/alerts").json()["data"]
        assert any(e["status"] == "fired" for e in fired), fired
        # The champion's lineage: dataset -> run -> version -> deployment -> the traces it served.
        lineage = c.get(f"{API}/registry/models/assistant/versions/2/lineage").json()
        kinds = [n["kind"] for n in lineage["nodes"]]
        assert {"dataset", "run", "version", "deployment", "traces"} <= set(kinds), kinds
        served = next(n for n in lineage["nodes"] if n["kind"] == "traces")
        assert served["served_names"][0] == "assistant@2", served


def test_the_readme_names_what_this_test_drives() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**9. Improve the model.**"):readme.index("## What is here")]
    for needle in ("podium tune export --format sft --where user-feedback=1", "podium tune sft examples/tune/sft.yaml",
                   "--merged smollm2 --quant q8_0 --alias champion", "--run RUN_ID --quant q8_0 --alias challenger",
                   '"model": "registry:/assistant@champion"', "podium deploy canary --alias assistant --model assistant",
                   "--candidate challenger"):
        assert needle in section, needle

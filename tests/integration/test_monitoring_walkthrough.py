"""The README's "Monitor production" walk-through, end to end, on SQLite and PostgreSQL: an online
evaluation rule with an LLM judge; traffic through the gateway with the official ``openai``
client; a thumbs-down from the SDK; an annotation queue reviewed and turned into dataset items; a
drift monitor that sees a topic shift and draws its chart; and an alert rule on the judge's
score that reaches a local webhook. The server runs its embedded worker, as ``podium up`` does;
the only stand-in is the model (the fake OpenAI-compatible upstream instead of the local model,
so the judge's verdicts are known)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ProjectKeys, wait_for

pytestmark = pytest.mark.slow

API = "/api/v1"


def _topic_traces(prefix: str, texts: list[str], start: datetime) -> list[dict[str, Any]]:
    return [{"type": "span", "body": {
        "id": f"{prefix}{i}-s", "trace_id": f"{prefix}{i}", "name": "support-bot", "kind": "generation",
        "model": "fake", "start_time": (start + timedelta(seconds=30 * i)).isoformat(),
        "end_time": (start + timedelta(seconds=30 * i + 1)).isoformat(),
        "input": text, "output": "Thanks, we will look into it."}} for i, text in enumerate(texts)]


def test_the_readme_monitoring_walkthrough(store: Any, project: ProjectKeys, upstream: Any, podium_home: Path,
                                           webhook: tuple[str, list[dict[str, Any]]],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    import podium
    from tests.gateway.fake_upstream import Reply
    from tests.gateway.openai_app import serve

    hook_url, hooks = webhook

    # The judge finds every answer impolite (1 of 5); everything else gets a French greeting.
    def answer(body: dict[str, Any]) -> Reply:
        if "politely" in json.dumps(body):
            return Reply('{"reasoning": "curt and off topic", "score": 1}', prompt_tokens=80)
        return Reply("Bonjour !")

    upstream.respond("fake-a", answer)
    srv = serve(store, project, upstream, podium_home)  # `podium up`: its embedded worker runs the jobs
    try:
        with srv.client() as c:
            # 1. An online evaluation rule: an LLM judge through the gateway and a PII scanner.
            r = c.post(f"{API}/evaluation-rules", json={
                "name": "answers", "filter": {"name": "gateway fake"}, "sample_rate": 1, "delay_s": 0,
                "scorers": [{"type": "llm-rubric", "name": "polite", "model": "fake",
                             "params": {"value": "answers the question politely"}},
                            {"guardrail": "pii"}]})
            assert r.status_code == 201, r.text
            # 5. The alert rule, created before the traffic so the breach is what fires it.
            r = c.post(f"{API}/alert-rules", json={
                "name": "impolite-answers", "condition": {"metric": "score:polite", "agg": "avg"},
                "op": "<", "threshold": 0.67, "window_s": 600, "eval_interval_s": 1,
                "channels": [{"type": "webhook", "params": {"url": hook_url}}]})
            assert r.status_code == 201, r.text

        # 2. Traffic through the gateway with the official client, as the README's monitor.py.
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key=project.secret_key, max_retries=0)
        trace_ids = []
        for q in ["Name a fruit.", "What is 2+2?", "Say hello in French."]:
            raw = client.chat.completions.with_raw_response.create(
                model="fake", messages=[{"role": "user", "content": q}], max_tokens=30)
            assert raw.parse().choices[0].message.content == "Bonjour !"
            trace_ids.append(raw.headers["x-podium-trace-id"])

        # 3. A thumbs-down from the SDK, configured from the environment as the README's app is.
        podium.shutdown(1)
        monkeypatch.setenv("PODIUM_BASE_URL", srv.url)
        monkeypatch.setenv("PODIUM_PUBLIC_KEY", project.public_key)
        monkeypatch.setenv("PODIUM_SECRET_KEY", project.secret_key)
        try:
            podium.feedback(trace_ids[-1], "down", comment="not French")
            assert podium.flush(10).sent == 1
        finally:
            podium.shutdown(1)

        with srv.client() as c:
            def scores(source: str) -> list[dict[str, Any]]:
                return [s for s in c.get(f"{API}/scores", params={"source": source, "limit": 100}).json()["data"]
                        if s["trace_id"] in trace_ids]

            # Every gateway trace gets the judge's and the scanner's scores, with source online.
            online = wait_for("online scores on every trace",
                              lambda: (got := scores("online")) and len(got) == 6 and got)
            polite = sorted((s["trace_id"], s["value"]) for s in online if s["name"] == "polite")
            assert polite == sorted((t, 0.0) for t in trace_ids)
            assert {s["name"] for s in online} == {"polite", "guardrail:pii"}
            [fb] = scores("feedback")
            assert fb["trace_id"] == trace_ids[-1] and fb["value"] == 0 and fb["comment"] == "not French"

            # 5. ... and the alert on the judge's average reaches the webhook, Slack-shaped.
            fired = wait_for("the alert at the webhook", lambda: [h for h in hooks if "FIRING" in h.get("text", "")])
            assert "impolite-answers" in fired[0]["text"] and fired[0]["podium"]["alert"]["value"] == 0.0
            history = c.get(f"{API}/alerts", params={"rule": "impolite-answers"}).json()["data"]
            assert any(e["status"] == "fired" and e["deliveries"][0]["ok"] for e in history), history

            # 4. An annotation queue over the gateway's traces, reviewed, then to a dataset.
            r = c.post(f"{API}/score-configs", json={"name": "correct", "data_type": "boolean"})
            assert r.status_code == 201, r.text
            r = c.post(f"{API}/annotation-queues", json={
                "name": "impolite", "score_config_ids": [r.json()["id"]],
                "filter": {"name": "gateway fake", "score_name": "polite", "max_score": 0.5}})
            assert r.status_code == 201, r.text
            queue = r.json()
            assert queue["counts"]["total"] == 3, queue
            for _ in trace_ids:
                item = c.post(f"{API}/annotation-queues/{queue['id']}/next", json={"annotator": "ana"}).json()["item"]
                r = c.post(f"{API}/annotation-queues/{queue['id']}/items/{item['id']}/annotations",
                           json={"annotator": "ana", "values": {"correct": False}})
                assert r.status_code == 200, r.text
            assert c.get(f"/annotate/{queue['id']}").status_code == 200  # progress and agreement
            r = c.post(f"{API}/annotation-queues/{queue['id']}/to-dataset", json={"dataset": "reviewed"})
            assert r.status_code == 200 and r.json()["items"] == 3, r.text
            assert len(scores("human")) == 3

            # 6. A drift monitor: last week's questions were about billing, today's about travel.
            now = datetime.now(UTC)
            billing = [f"Why was my card charged twice for invoice {i}?" for i in range(30)]
            travel = [f"Which gate does flight {i} to Lisbon leave from?" for i in range(30)]
            batch = (_topic_traces("ref", billing, now - timedelta(days=3))
                     + _topic_traces("cur", travel, now - timedelta(hours=2)))
            r = c.post(f"{API}/ingest", json={"batch": batch})
            assert r.status_code in (200, 207) and not r.json().get("errors"), r.text
            wait_for("the drift traffic stored", lambda: c.get(f"{API}/traces", params={
                "name": "support-bot", "limit": 100}).json()["data"].__len__() == 60)
            r = c.post(f"{API}/drift-monitors", json={
                "name": "support", "scope": {"filter": {"name": "support-bot"}},
                "features": ["input_embedding", "input_length", "input_topics"]})
            assert r.status_code == 201, r.text
            r = c.post(f"{API}/drift-monitors/support/run")
            assert r.status_code == 200, r.text
            result = r.json()
            assert result["drifted"] is True, result
            page = c.get(f"/drift/{result['monitor_id']}")
            assert page.status_code == 200 and 'id="drift-data"' in page.text
    finally:
        srv.thread.stop()


def test_the_readme_names_what_this_test_drives() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**8. Monitor production.**"):]
    for needle in ('"name": "answers"', "with_raw_response", 'podium.feedback(trace_id, "down"',
                   "/drift-monitors", "podium alerts create rule.yaml", 'metric: "score:polite"'):
        assert needle in section, needle

"""Seed data for the UI tests, sent through the ingest API like an app would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

XSS_NAME = '<script>alert("xss-name")</script>'
XSS_USER = "<img src=x onerror=alert('xss-user')>"
XSS_TAG = '"><svg onload=alert(1)>'
XSS_INPUT = "</script><script>alert('xss-input')</script>"
BIG_STRING_CHARS = 2_000_000


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def span(trace_id: str, sid: str, t0: datetime, *, parent: str | None = None, ms: int = 0, dur: int = 100,
         **kw: Any) -> dict[str, Any]:
    body = {
        "id": sid,
        "trace_id": trace_id,
        "parent_id": parent,
        "name": kw.pop("name", sid),
        "start_time": iso(t0 + timedelta(milliseconds=ms)),
        "end_time": iso(t0 + timedelta(milliseconds=ms + dur)),
        **kw,
    }
    return {"type": "span", "body": body}


def chat_trace(trace_id: str, t0: datetime, *, question: str, answer: str, user: str, session: str,
               model: str = "gpt-4o-mini", status: str = "ok", tags: list[str] | None = None,
               latency: int = 900) -> list[dict[str, Any]]:
    messages = [
        {"role": "system", "content": "You answer geography questions in one word."},
        {"role": "user", "content": question},
    ]
    return [
        span(trace_id, f"{trace_id}-root", t0, name="qa-bot", dur=latency, user_id=user, session_id=session,
             tags=tags or ["prod"], input={"question": question}, output=answer, status=status,
             status_message="upstream timed out" if status == "error" else None, environment="production",
             release="v1.2.0"),
        span(trace_id, f"{trace_id}-retrieve", t0, parent=f"{trace_id}-root", ms=10, dur=60, name="retrieve",
             kind="retrieval", input={"query": question}, output=[{"doc": "Paris is the capital of France."}]),
        span(trace_id, f"{trace_id}-llm", t0, parent=f"{trace_id}-root", ms=100, dur=latency - 150,
             name="answer", kind="generation", model=model, provider="openai",
             usage={"input_tokens": 1200, "output_tokens": 80},
             completion_start_time=iso(t0 + timedelta(milliseconds=250)), input=messages,
             output={"role": "assistant", "content": answer}, model_parameters={"temperature": 0.2},
             prompt_name="qa-prompt", prompt_version=3, status="error" if status == "error" else "ok"),
        span(trace_id, f"{trace_id}-tool", t0, parent=f"{trace_id}-llm", ms=300, dur=100, name="lookup-tool",
             kind="tool", input={"city": "Paris"}, output={"population": 2_100_000}),
    ]


def seed(client: httpx.Client, *, now: datetime | None = None) -> dict[str, Any]:
    """Ingest a small project: two users, two sessions, an error, an XSS attempt, a big payload."""
    now = now or datetime.now(UTC)
    t = now - timedelta(minutes=30)
    batch: list[dict[str, Any]] = []
    batch += chat_trace("tr-paris", t, question="What is the capital of France?", answer="Paris.",
                        user="alice", session="chat-1", tags=["prod", "geo"])
    batch += chat_trace("tr-rome", t + timedelta(minutes=2), question="And of Italy?", answer="Rome.",
                        user="alice", session="chat-1", tags=["prod", "geo"], latency=1500)
    batch += chat_trace("tr-fail", t + timedelta(minutes=5), question="Capital of Atlantis?", answer="",
                        user="bob", session="chat-2", status="error", model="gpt-4o", tags=["beta"], latency=4000)
    batch.append(span("tr-xss", "xss-root", t + timedelta(minutes=7), name=XSS_NAME, user_id=XSS_USER,
                      session_id="s<b>bold</b>", tags=[XSS_TAG], input={"html": XSS_INPUT}, output=XSS_INPUT,
                      metadata={"<k>": "<v onclick=alert(2)>"}))
    batch.append(span("tr-big", "big-root", t + timedelta(minutes=9), name="big-payload", user_id="carol",
                      input={"blob": "x" * BIG_STRING_CHARS, "items": list(range(5000))}, output="done"))
    r = client.post("/api/v1/ingest", json={"batch": batch})
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/scores", json={"name": "accuracy", "value": 0.9, "trace_id": "tr-paris",
                                              "source": "eval", "comment": "matches the reference"})
    assert r.status_code == 201, r.text
    return {"now": now}


def seed_wide_trace(store: Any, project_id: str, trace_id: str, n: int, *, roots: int = 10) -> None:
    """A trace of ``n`` spans written straight into the store (fast): ``roots`` top-level spans,
    the rest spread evenly as their children, with the trace row's aggregates."""
    from podium.store import tables as t

    t0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    end = t0 + timedelta(microseconds=n * 10, milliseconds=5)
    sqlite = store.engine.dialect.name == "sqlite"

    seconds: dict[int, str] = {}

    def when(dt: datetime) -> Any:
        # SQLite stores naive UTC text: write it directly (strftime once per second, not per row).
        if not sqlite:
            return dt
        key = int(dt.timestamp())
        if key not in seconds:
            seconds[key] = dt.strftime("%Y-%m-%d %H:%M:%S")
        return f"{seconds[key]}.{dt.microsecond:06d}"

    rows = []
    for i in range(n):
        st = t0 + timedelta(microseconds=i * 10)
        rows.append((project_id, trace_id, f"s{i}", None if i < roots else f"s{i % roots}", f"step-{i}", "span",
                     when(st), when(st + timedelta(milliseconds=5)), 5.0, "ok", when(t0)))
    cols = "project_id, trace_id, id, parent_id, name, kind, start_time, end_time, latency_ms, status, updated_at"
    marks = ", ".join(["?" if sqlite else "%s"] * 11)
    rows.sort(key=lambda r: r[2])  # primary-key order: appends to the B-tree instead of random inserts
    with store.engine.begin() as conn:
        conn.execute(t.trace.insert().values(
            project_id=project_id, id=trace_id, name="wide-trace", name_explicit=False, input_explicit=False,
            output_explicit=False, start_time=t0, end_time=end, latency_ms=(end - t0).total_seconds() * 1000,
            status="ok", span_count=n, error_count=0, input_tokens=0, output_tokens=0, total_tokens=0,
            total_cost=0, updated_at=t0,
        ))
        cur = conn.connection.cursor()
        cur.executemany(f"INSERT INTO span ({cols}) VALUES ({marks})", rows)
        cur.close()


QA_V1 = [{"role": "system", "content": "You answer geography questions."},
         {"role": "user", "content": "{{question}}"}]
QA_V3 = [{"role": "system", "content": "You answer geography questions in one word.\nBe {{tone}}."},
         {"type": "placeholder", "name": "history"},
         {"role": "user", "content": "{{question}}"}]
XSS_COMMIT = "<img src=x onerror=alert('xss-commit')>"
XSS_TEMPLATE = "</pre><script>alert('xss-template')</script> {{name}}"


def seed_prompts(client: httpx.Client) -> dict[str, Any]:
    """Prompts through the REST API: ``qa-prompt`` (the seeded traces link to its v3) with three
    versions, labels production (protected, moved once), staging and an A/B ``canary``; a text
    prompt ``greeting`` with hostile content."""
    def ok(r: httpx.Response, status: int = 201) -> dict[str, Any]:
        assert r.status_code == status, r.text
        return r.json() if r.content else {}

    ok(client.post("/api/v1/prompts", json={"name": "qa-prompt", "prompt": QA_V1, "labels": ["production"],
                                             "config": {"model": "gpt-4o-mini", "temperature": 0.2},
                                             "tags": ["geo", "support"], "commit_message": "first cut"}))
    ok(client.post("/api/v1/prompts/qa-prompt/versions", json={
        "prompt": QA_V1, "config": {"model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 20},
        "labels": ["staging"], "commit_message": "warmer"}))
    ok(client.put("/api/v1/prompts/qa-prompt/labels/production", json={"version": 2, "comment": "ship warmer"}),
       200)
    ok(client.post("/api/v1/prompts/qa-prompt/versions", json={
        "prompt": QA_V3, "config": {"model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 20},
        "labels": ["staging"], "commit_message": "one word, with history"}))
    ok(client.put("/api/v1/prompts/qa-prompt/labels/canary",
                  json={"versions": [{"version": 2, "weight": 90}, {"version": 3, "weight": 10}]}), 200)
    ok(client.put("/api/v1/prompts/settings", json={"protected_labels": ["production"]}), 200)
    ok(client.post("/api/v1/prompts", json={"name": "team/greeting", "prompt": XSS_TEMPLATE,
                                             "config": {"note": "<b>bold</b>"}, "tags": [XSS_TAG],
                                             "commit_message": XSS_COMMIT}))
    return {"prompt": "qa-prompt"}


def seed_evals(client: httpx.Client) -> dict[str, Any]:
    """A dataset with two versions and two finished runs on it: ``exact`` improves on two items
    and regresses on one; the candidate's answers carry hostile text."""
    def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
        assert r.status_code == status, r.text
        return r.json()  # type: ignore[no-any-return]

    ok(client.post("/api/v1/datasets", json={"name": "geo-qa", "description": "capitals <b>of</b> Europe", "items": [
        {"id": "fr", "input": {"question": "Capital of France?"}, "expected": "Paris", "split": "test"},
        {"id": "it", "input": {"question": "Capital of Italy?"}, "expected": "Rome", "split": "test"},
        {"id": "es", "input": {"question": "Capital of Spain?"}, "expected": "Madrid", "split": "dev"}]}), 201)
    ok(client.post("/api/v1/datasets/geo-qa/items", json={"message": "add Germany", "items": [
        {"id": "de", "input": {"question": "Capital of Germany?"}, "expected": "Berlin"}]}))
    answers = {"baseline": {"fr": "Paris", "it": "Milan", "es": "Madrid", "de": "Bonn"},
               "candidate": {"fr": "Paris", "it": "Rome", "es": XSS_INPUT, "de": "Berlin"}}
    expected = {"fr": "Paris", "it": "Rome", "es": "Madrid", "de": "Berlin"}
    ids = {}
    for name, out in answers.items():
        e = ok(client.post("/api/v1/experiments", json={
            "name": name, "dataset_name": "geo-qa", "labels": ["ci"], "config": {"model": "fake"},
            "scorers": [{"name": "exact", "type": "exact_match"}, {"name": "length", "direction": "lower"}]}), 201)
        ids[name] = e["id"]
        ok(client.post(f"/api/v1/experiments/{e['id']}/items", json={"items": [
            {"item_id": k, "position": i, "input": {"question": f"Capital? {k}"}, "expected": expected[k],
             "output": v, "latency_ms": 100.0 + 10 * i, "cost": 0.001,
             "scores": {"exact": {"value": float(v == expected[k]), "passed": v == expected[k]},
                        "length": {"value": float(len(v))}}}
            for i, (k, v) in enumerate(out.items())]}))
        ok(client.post(f"/api/v1/experiments/{e['id']}/finish", json={}))
    return ids

"""Training data from production (podium.tune.export): SFT / DPO / KTO records from traces with
scores, dedup, redaction, token statistics, split, lineage, idempotent re-export; the REST
routes on a real server and ``podium tune export`` end to end. Runs on each database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from podium.cli.main import app
from podium.core.datasets import DatasetItem
from podium.core.tokens import count_tokens
from podium.errors import BadRequest, Conflict
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.traces import TraceFilter
from podium.tune.export import ExportSpec, export, parse_condition
from tests.conftest import LiveServer
from tests.store.test_store import span

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_n = 0


def add(store: Any, pid: str, tid: str, inp: Any, out: Any, scores: dict[str, Any] | None = None, *,
        name: str = "chat", child: tuple[str, Any, Any] | None = None) -> None:
    """One trace (a root span carrying ``inp``/``out``) with ``scores`` ({name: value})."""
    global _n
    _n += 1
    st = T0 + timedelta(seconds=_n)
    spans: list[Any] = [span(pid, tid, f"{tid}-root", name=name, start_time=st, end_time=st + timedelta(seconds=1),
                  latency_ms=1000.0, status="ok", input=inp, output=out)]
    if child:
        spans.append(span(pid, tid, f"{tid}-llm", parent_id=f"{tid}-root", kind="generation", name=child[0],
                          start_time=st, end_time=st + timedelta(milliseconds=5), latency_ms=5.0, status="ok",
                          input=child[1], output=child[2]))
    rows: list[Any] = []
    for k, v in (scores or {}).items():
        is_bool = isinstance(v, bool)
        rows.append({"project_id": pid, "id": f"{tid}-{k}", "trace_id": tid, "span_id": None, "session_id": None,
                     "name": k, "data_type": "boolean" if is_bool else "categorical" if isinstance(v, str)
                     else "numeric", "value": None if isinstance(v, str) else float(v),
                     "string_value": v if isinstance(v, str) else None, "source": "api", "comment": None,
                     "metadata": None, "timestamp": st})
    store.ingest.write(IngestBatch(spans=spans, scores=rows))


def msgs(q: str, system: str | None = None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q}]


def assert_openai_sft(rec: dict[str, Any]) -> None:
    assert set(rec) == {"messages"}
    ms = rec["messages"]
    assert isinstance(ms, list) and len(ms) >= 2
    for m in ms:
        assert set(m) == {"role", "content"} and m["role"] in ("system", "user", "assistant")
        assert isinstance(m["content"], str) and m["content"]
    assert ms[-1]["role"] == "assistant" and any(m["role"] == "user" for m in ms)


def test_sft_keeps_traces_with_positive_feedback(store: Any, project: Any) -> None:
    pid = project.project_id
    add(store, pid, "a", msgs("What is 2+2?", system="Be brief."), {"role": "assistant", "content": "4"},
        {"user-feedback": True})
    add(store, pid, "b", "Capital of France?", "Lyon", {"user-feedback": False})
    add(store, pid, "c", "Capital of Italy?", "Rome", {"user-feedback": True})
    add(store, pid, "d", "No feedback here", "ok")
    add(store, pid, "e", "No answer", None, {"user-feedback": True})
    res = export(store, pid, ExportSpec(format="sft", where="user-feedback=1"), dataset="sft-data", actor="pk-x")
    assert sorted(i.source_trace_id or "" for i in res.items) == ["a", "c"]
    assert res.dropped == {"failed_condition": 1, "no_score": 1, "no_output": 1}
    assert res.dropped_samples["failed_condition"] == ["b"]
    by_trace = {i.source_trace_id: r for i, r in zip(res.items, res.records, strict=True)}
    # a gateway trace's message list is reused; plain text becomes one user message
    assert by_trace["a"] == {"messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "What is 2+2?"},
                                          {"role": "assistant", "content": "4"}]}
    assert by_trace["c"]["messages"] == [{"role": "user", "content": "Capital of Italy?"},
                                         {"role": "assistant", "content": "Rome"}]
    for r in res.records:
        assert_openai_sft(json.loads(json.dumps(r)))
    # saved: items carry split, source trace and the record as input/expected
    _, page = store.evals.list_items(pid, "sft-data")
    assert {i["source_trace_id"] for i in page.items} == {"a", "c"}
    assert all(i["split"] in ("train", "validation") for i in page.items)
    # no condition: every trace with input and output
    res2 = export(store, pid, ExportSpec(format="sft"), dry_run=True)
    assert len(res2.records) == 4 and res2.dropped == {"no_output": 1}


def test_dpo_pairs_best_and_worst_response_to_the_same_input(store: Any, project: Any) -> None:
    pid = project.project_id
    add(store, pid, "h1", msgs("Write a haiku"), "Leaves fall, softly", {"polite": 0.9})
    add(store, pid, "h2", msgs("  write a HAIKU "), "meh", {"polite": 0.5})
    add(store, pid, "h3", msgs("Write a haiku"), "No. Go away.", {"polite": 0.2})
    add(store, pid, "s1", "Say hi", "Hi!", {"polite": 0.8})
    add(store, pid, "s2", "Say hi", "hi", {"polite": 0.75})
    add(store, pid, "o1", "Only one answer", "lonely", {"polite": 1.0})
    add(store, pid, "n1", "Unscored", "x")
    res = export(store, pid, ExportSpec(format="dpo", rank_by="polite", min_margin=0.1), dataset="prefs")
    assert len(res.records) == 1
    rec = res.records[0]
    assert set(rec) == {"prompt", "chosen", "rejected"}
    assert rec["prompt"] == [{"role": "user", "content": "Write a haiku"}]
    assert rec["chosen"] == [{"role": "assistant", "content": "Leaves fall, softly"}]
    assert rec["rejected"] == [{"role": "assistant", "content": "No. Go away."}]
    item = res.items[0]
    assert item.source_trace_id == "h1" and item.metadata["rejected_trace_id"] == "h3"
    assert item.metadata["margin"] == pytest.approx(0.7)
    assert res.dropped == {"small_margin": 2, "no_pair": 1, "no_score": 1, "not_extreme": 1}
    # a smaller margin admits the second pair
    res2 = export(store, pid, ExportSpec(format="dpo", rank_by="polite", min_margin=0.01), dry_run=True)
    assert len(res2.records) == 2
    assert res.source["trace_ids"]["count"] == 2  # h1 and h3


def test_kto_labels_each_response(store: Any, project: Any) -> None:
    pid = project.project_id
    add(store, pid, "k1", "Q1", "good answer", {"verdict": "good"})
    add(store, pid, "k2", "Q2", "bad answer", {"verdict": "bad"})
    add(store, pid, "k3", "Q3", "unjudged")
    res = export(store, pid, ExportSpec(format="kto", where="verdict=good"), dataset="kto-data")
    recs = {i.source_trace_id: r for i, r in zip(res.items, res.records, strict=True)}
    for r in recs.values():
        assert set(r) == {"prompt", "completion", "label"} and isinstance(r["label"], bool)
    assert recs["k1"]["label"] is True and recs["k2"]["label"] is False
    assert recs["k1"]["completion"] == [{"role": "assistant", "content": "good answer"}]
    assert res.dropped == {"no_score": 1}
    # numeric conditions too
    add(store, pid, "k4", "Q4", "fine", {"stars": 4})
    add(store, pid, "k5", "Q5", "poor", {"stars": 2})
    res2 = export(store, pid, ExportSpec(format="kto", where="score:stars >= 3"), dry_run=True)
    assert {i.source_trace_id: i.labels["label"] for i in res2.items} == {"k4": True, "k5": False}


def test_dedup_redaction_token_stats_and_max_tokens(store: Any, project: Any) -> None:
    pid = project.project_id
    add(store, pid, "d1", "Hello there", "General Kenobi", {"ok": 1})
    add(store, pid, "d2", "hello   THERE", "general kenobi", {"ok": 1})  # same after normalising
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD"
    add(store, pid, "r1", "My mail is bob@example.com, key " + secret, "Noted, bob@example.com", {"ok": 1})
    add(store, pid, "l1", "long " * 300, "short", {"ok": 1})
    res = export(store, pid, ExportSpec(format="sft", where="ok=1", redact=True, max_tokens=200), dataset="clean")
    assert res.dropped == {"duplicate": 1, "too_long": 1}
    assert res.dropped_samples["duplicate"] == ["d2"]
    text = json.dumps(res.records)
    assert "bob@example.com" not in text and secret not in text
    assert "<EMAIL_ADDRESS>" in text
    _, page = store.evals.list_items(pid, "clean")
    rows = json.dumps(page.items, default=str)
    assert "bob@example.com" not in rows and secret not in rows and len(page.items) == 2
    # token statistics per field, counted with the tokenizer
    prompts = sorted(count_tokens(i.input) for i in res.items)
    st = res.stats
    assert set(st) == {"prompt", "completion", "total"}
    assert st["prompt"]["count"] == 2 and st["prompt"]["min"] == prompts[0] and st["prompt"]["max"] == prompts[-1]
    assert st["total"]["max"] <= 200
    assert st["completion"]["min"] == min(count_tokens(i.expected) for i in res.items)
    # without dedup the duplicate stays
    res2 = export(store, pid, ExportSpec(format="sft", where="ok=1", dedup=False), dry_run=True)
    assert "duplicate" not in res2.dropped and len(res2.records) == 4


def test_split_is_deterministic_and_reexport_is_idempotent(store: Any, project: Any) -> None:
    pid = project.project_id
    for k in range(40):
        add(store, pid, f"t{k:02d}", f"question {k}", f"answer {k}", {"user-feedback": True}, name="qa")
    spec = ExportSpec(format="sft", where="user-feedback=1", validation_ratio=0.25,
                      filter=TraceFilter(name="qa"))
    r1 = export(store, pid, spec, dataset="split-data", actor="pk-a")
    assert r1.dataset is not None and r1.dataset["version"] == 1 and r1.dataset["changed"]
    assert r1.splits["train"] + r1.splits["validation"] == 40
    assert 3 <= r1.splits["validation"] <= 18
    r2 = export(store, pid, spec, dataset="split-data", actor="pk-a")
    assert {i.id: i.split for i in r1.items} == {i.id: i.split for i in r2.items}
    assert r2.dataset is not None and r2.dataset["version"] == 1 and not r2.dataset["changed"]
    assert len(store.evals.list_versions(pid, "split-data")) == 1
    # lineage of the version
    src = store.evals.list_versions(pid, "split-data")[0]["source"]
    assert src["kind"] == "export" and src["format"] == "sft" and src["filter"] == {"name": "qa"}
    assert src["selection"]["where"] == "user-feedback==1"
    assert src["params"]["validation_ratio"] == 0.25 and src["params"]["redact"] is False
    assert src["trace_ids"]["count"] == 40 and len(src["trace_ids"]["digest"]) == 64
    assert src["created_by"] == "pk-a"
    # a new trace with feedback: one new version, the others unchanged
    add(store, pid, "t99", "question 99", "answer 99", {"user-feedback": True}, name="qa")
    r3 = export(store, pid, spec, dataset="split-data")
    assert r3.dataset is not None and r3.dataset["version"] == 2 and r3.dataset["added"] == 1
    assert r3.dataset["unchanged"] == 40


def test_span_target_and_conditions(store: Any, project: Any) -> None:
    pid = project.project_id
    add(store, pid, "sp1", "outer in", "outer out", {"ok": 1}, child=("llm-call", msgs("inner q"), "inner a"))
    res = export(store, pid, ExportSpec(format="sft", span_kind="generation", where="ok=1"), dry_run=True)
    assert res.records == [{"messages": [{"role": "user", "content": "inner q"},
                                         {"role": "assistant", "content": "inner a"}]}]
    assert res.items[0].metadata["span_id"] == "sp1-llm"
    assert str(parse_condition("score:polite >= 0.8")) == "polite>=0.8"
    for bad in ("nonsense", "x >= good", "x = inf"):
        with pytest.raises(BadRequest):
            parse_condition(bad)
    with pytest.raises(BadRequest):
        export(store, pid, ExportSpec(format="kto"), dry_run=True)
    with pytest.raises(BadRequest):
        export(store, pid, ExportSpec(format="dpo"), dry_run=True)
    with pytest.raises(BadRequest):  # nothing selected: nothing saved
        export(store, pid, ExportSpec(format="sft", where="missing=1"), dataset="empty")
    store.evals.change_items(pid, "handmade", upsert=[DatasetItem(id="x", input="q")], create=True)
    with pytest.raises(Conflict):
        export(store, pid, ExportSpec(format="sft"), dataset="handmade")


# --- the REST routes and the CLI on a real server ------------------------------------------------------------


@pytest.fixture
def live(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("PODIUM_BASE_URL", server.url)
    monkeypatch.setenv("PODIUM_PUBLIC_KEY", server.keys.public_key)
    monkeypatch.setenv("PODIUM_SECRET_KEY", server.keys.secret_key)
    monkeypatch.setenv("COLUMNS", "80")
    pid = server.keys.project_id
    for k in range(6):
        add(server.store, pid, f"w{k}", msgs(f"q{k}"), f"a{k}", {"user-feedback": k % 2 == 0})
    yield server


def test_api_export_dry_run_save_and_jsonl(live: LiveServer) -> None:
    with live.client() as c:
        r = c.post("/api/v1/training-data/export", json={"format": "sft", "where": "user-feedback=1",
                                                           "dry_run": True, "sample": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["records"] == 3 and body["dataset"] is None and len(body["sample"]) == 2
        assert body["dropped"] == {"failed_condition": 3} and body["token_stats"]["prompt"]["count"] == 3
        assert c.get("/api/v1/datasets/fb").status_code == 404  # nothing saved
        r = c.post("/api/v1/training-data/export", json={"format": "sft", "where": "user-feedback=1",
                                                           "dataset": "fb", "validation_ratio": 0.0})
        assert r.status_code == 200, r.text
        assert r.json()["dataset"]["version"] == 1
        versions = c.get("/api/v1/datasets/fb/versions").json()
        vs = versions["data"] if isinstance(versions, dict) else versions
        assert vs[0]["source"]["kind"] == "export"
        r = c.get("/api/v1/datasets/fb/export.jsonl", params={"split": "train"})
        assert r.status_code == 200
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert len(lines) == 3
        for rec in lines:
            assert_openai_sft(rec)
        assert c.get("/api/v1/datasets/fb/export.jsonl", params={"split": "validation"}).text == ""


@pytest.mark.parametrize("body", [
    {"format": "xml", "dataset": "d"},
    {"format": "sft"},  # no dataset and no dry run
    {"format": "sft", "dataset": "d", "where": "???"},
    {"format": "kto", "dataset": "d"},
    {"format": "dpo", "dataset": "d"},
    {"format": "sft", "dataset": "d", "filter": {"bogus": 1}},
    {"format": "sft", "dataset": "d", "validation_ratio": 1.5},
    {"format": "sft", "dataset": "d", "unknown": True},
    {"format": "sft", "dataset": "bad name!"},
])
def test_bad_specs_are_400_in_the_pinned_shape(live: LiveServer, body: dict[str, Any]) -> None:
    with live.client() as c:
        r = c.post("/api/v1/training-data/export", json=body)
    assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
    err = r.json()["error"]
    assert set(err) >= {"code", "message", "details"} and err["message"]


def test_cli_export_end_to_end(live: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "data"
    r = CliRunner().invoke(app, ["tune", "export", "--format", "sft", "--where", "user-feedback=1",
                                 "--dataset", "cli-data", "--out", str(out), "--validation", "0.5",
                                 "--filter", "name=chat"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "3 SFT records from 6 traces -> dataset cli-data v1" in r.output
    assert max(len(line) for line in r.output.splitlines() if not line.startswith("wrote ")) <= 80, r.output
    recs = [json.loads(x) for p in ("train.jsonl", "validation.jsonl") for x in (out / p).read_text().splitlines()]
    assert len(recs) == 3
    for rec in recs:
        assert_openai_sft(rec)
    again = CliRunner().invoke(app, ["tune", "export", "--format", "sft", "--where", "user-feedback=1",
                                     "--dataset", "cli-data", "--validation", "0.5", "--filter", "name=chat"])
    assert again.exit_code == 0 and "(unchanged)" in again.output
    dry = CliRunner().invoke(app, ["tune", "export", "--format", "kto", "--where", "user-feedback=1", "--dry-run"])
    assert dry.exit_code == 0 and "dry run" in dry.output
    bad = CliRunner().invoke(app, ["tune", "export", "--format", "kto", "--dataset", "x"])
    assert bad.exit_code == 1 and "kto needs where" in bad.output


def test_a_failing_redactor_drops_the_record_and_max_traces_truncates(store: Any, project: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import podium.tune.export as ex

    pid = project.project_id
    for k in range(3):
        add(store, pid, f"f{k}", f"q{k}", f"a{k}")

    def broken() -> Any:
        def redact(text: str) -> str:
            raise RuntimeError("scanner down")
        return redact

    monkeypatch.setattr(ex, "_redactor", broken)
    res = export(store, pid, ExportSpec(format="sft", redact=True), dry_run=True)
    assert res.records == [] and res.dropped == {"redaction_failed": 3}
    monkeypatch.undo()
    res2 = export(store, pid, ExportSpec(format="sft", max_traces=2), dry_run=True)
    assert res2.truncated and len(res2.records) == 2 and res2.trace_ids == ["f0", "f1"]

"""The prompt repository and registry rules on SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podium.core.records import ScoreIn, SpanIn
from podium.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from podium.prompts import PromptRegistry
from podium.server.convert import BatchBuilder
from podium.store.repos.prompts import PromptRepo
from tests.conftest import make_project

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def reg(store: Any) -> PromptRegistry:
    return PromptRegistry(store.prompts)


def create(store: Any, pid: str, name: str, prompt: Any = "Answer {{q}}", role: str = "admin", **body: Any) -> dict[str, Any]:
    return reg(store).create_version(pid, {"name": name, "prompt": prompt, **body}, role=role, actor="pk-test")


def test_versions_labels_and_latest(store: Any) -> None:
    pid = make_project(store, "p").project_id
    v1 = create(store, pid, "support/qa", tags=["faq"], labels=["production"], commit_message="first",
                config={"model": "local", "temperature": 0.1})
    assert (v1["version"], v1["labels"], v1["tags"], v1["variables"]) == (1, ["latest", "production"], ["faq"], ["q"])
    assert v1["created_by"] == "pk-test" and v1["commit_message"] == "first" and v1["size_bytes"] > 10
    v2 = create(store, pid, "support/qa", prompt="Answer {{q}} in {{lang}}", labels=["staging"])
    assert v2["version"] == 2 and v2["labels"] == ["latest", "staging"] and v2["tags"] == ["faq"]  # tags kept
    repo: PromptRepo = store.prompts
    assert repo.get_version(pid, "support/qa", 1)["labels"] == ["production"]
    assert repo.get_version(pid, "support/qa", "latest")["version"] == 2
    summary = repo.get_prompt(pid, "support/qa")
    assert summary["latest_version"] == 2 and set(summary["labels"]) == {"latest", "production", "staging"}
    assert [v["version"] for v in repo.list_versions(pid, "support/qa").items] == [2, 1]
    page = repo.list_versions(pid, "support/qa", limit=1)
    assert [v["version"] for v in repo.list_versions(pid, "support/qa", cursor=page.next_cursor).items] == [1]
    # Another project never sees it.
    other = make_project(store, "other").project_id
    with pytest.raises(NotFound, match="no prompt 'support/qa'"):
        repo.get_prompt(other, "support/qa")
    with pytest.raises(NotFound) as exc:
        repo.get_version(pid, "support/qa", 7)
    assert "versions are 1 to 2" in exc.value.message and exc.value.details[0]["available"] == [1, 2]
    with pytest.raises(NotFound) as exc:
        repo.get_label(pid, "support/qa", "prod")
    assert exc.value.details[0]["available"] == ["latest", "production", "staging"]
    with pytest.raises(NotFound, match="did you mean 'support/qa'"):
        repo.get_version(pid, "support/qaa", 1)
    with pytest.raises(Conflict, match="is a text prompt"):
        create(store, pid, "support/qa", prompt=[{"role": "user", "content": "x"}])


def test_list_filters_and_pages(store: Any) -> None:
    pid = make_project(store, "p").project_id
    for i, name in enumerate(["a/one", "a/two", "b/three", "c_odd"]):
        create(store, pid, name, tags=["even" if i % 2 == 0 else "odd", "all"], labels=["production"] if i < 2 else [])
    repo: PromptRepo = store.prompts
    names = lambda **kw: [p["name"] for p in repo.list_prompts(pid, **kw).items]  # noqa: E731
    assert names() == ["a/one", "a/two", "b/three", "c_odd"]
    assert names(prefix="a/") == ["a/one", "a/two"] and names(q="THREE") == ["b/three"] and names(q="_o") == ["c_odd"]
    assert names(tag="even") == ["a/one", "b/three"] and names(tag="all", prefix="b/") == ["b/three"]
    assert names(tag="none") == [] and names(label="production") == ["a/one", "a/two"]
    first = repo.list_prompts(pid, limit=3)
    assert [p["name"] for p in repo.list_prompts(pid, limit=3, cursor=first.next_cursor).items] == ["c_odd"]
    repo.set_tags(pid, "a/one", ["x"])
    assert names(tag="x") == ["a/one"]
    repo.delete_prompt(pid, "a/one")
    assert names(prefix="a/") == ["a/two"]
    with pytest.raises(NotFound):
        repo.get_version(pid, "a/one", 1)


def test_label_history_rollback_and_ab(store: Any) -> None:
    pid = make_project(store, "p").project_id
    r = reg(store)
    for i in range(4):
        create(store, pid, "qa", prompt=f"v{i + 1} {{{{q}}}}", labels=["production"] if i == 0 else [])
    r.set_label(pid, "qa", "production", {"version": 2, "comment": "better"}, role="member", actor="pk-a")
    r.set_label(pid, "qa", "production", {"versions": [{"version": 2, "weight": 90}, {"version": 3, "weight": 10}]},
                role="member", actor="pk-b")
    label = store.prompts.get_label(pid, "qa", "production")
    assert label["targets"] == [{"version": 2, "weight": 90.0}, {"version": 3, "weight": 10.0}]
    assert label["version"] == 2 and [v["version"] for v in label["versions"]] == [2, 3]
    # A/B resolution: deterministic per seed, both versions in use.
    seen = {r.resolve(pid, "qa", seed=f"user-{i}")["version"] for i in range(200)}
    assert seen == {2, 3}
    assert len({r.resolve(pid, "qa", seed="alice")["version"] for _ in range(20)}) == 1
    assert r.resolve(pid, "qa", version="4")["version"] == 4
    assert r.resolve(pid, "qa", label="latest")["resolved_by"] == {
        "label": "latest", "targets": [{"version": 4, "weight": 1.0}], "ab": False, "seed": False}
    # Rollback pops moves one at a time: split -> 2 -> 1, then nothing earlier.
    assert r.rollback_label(pid, "qa", "production", role="member", actor="pk-c")["targets"] == [
        {"version": 2, "weight": 1.0}]
    assert r.rollback_label(pid, "qa", "production", role="member", actor="pk-c")["version"] == 1
    with pytest.raises(Conflict, match="did not exist before its first move"):
        r.rollback_label(pid, "qa", "production", role="member", actor="pk-c")
    hist = store.prompts.label_history(pid, "qa", "production").items
    assert [(e["action"], e["from_version"], e["to_version"], e["actor"]) for e in hist] == [
        ("rollback", 2, 1, "pk-c"), ("rollback", 2, 2, "pk-c"), ("set", 2, 2, "pk-b"), ("set", 1, 2, "pk-a"),
        ("set", None, 1, "pk-test")]
    assert hist[3]["comment"] == "better" and hist[0]["created_at"] >= hist[-1]["created_at"]
    # Removing a label is recorded and can be rolled back.
    r.delete_label(pid, "qa", "production", role="member", actor="pk-d")
    with pytest.raises(NotFound):
        store.prompts.get_label(pid, "qa", "production")
    assert r.rollback_label(pid, "qa", "production", role="member", actor="pk-d")["version"] == 1
    with pytest.raises(NotFound, match="no version 9"):
        r.set_label(pid, "qa", "staging", {"version": 9}, role="member", actor=None)
    with pytest.raises(ValidationFailed, match="exactly one of version"):
        r.set_label(pid, "qa", "staging", {"version": 1, "versions": [1]}, role="member", actor=None)
    with pytest.raises(ValidationFailed, match="moves by itself"):
        r.set_label(pid, "qa", "latest", {"version": 1}, role="admin", actor=None)


def test_protected_labels_need_an_admin(store: Any) -> None:
    pid = make_project(store, "p").project_id
    r = reg(store)
    create(store, pid, "qa", labels=["production"])
    create(store, pid, "qa")
    r.put_settings(pid, {"protected_labels": ["production", "production"]})
    assert store.prompts.get_settings(pid) == {"protected_labels": ["production"]}
    assert store.prompts.get_prompt(pid, "qa")["labels"]["production"]["protected"] is True
    for attempt in (
        lambda: r.set_label(pid, "qa", "production", {"version": 2}, role="member", actor="pk-m"),
        lambda: r.rollback_label(pid, "qa", "production", role="member", actor="pk-m"),
        lambda: r.delete_label(pid, "qa", "production", role="member", actor="pk-m"),
        lambda: create(store, pid, "qa", role="member", labels=["production"]),
    ):
        with pytest.raises(Forbidden, match="label 'production' is protected") as exc:
            attempt()
        assert exc.value.status_code == 403
    assert store.prompts.get_prompt(pid, "qa")["latest_version"] == 2  # the refused create made nothing
    r.set_label(pid, "qa", "staging", {"version": 2}, role="member", actor="pk-m")  # others are free
    assert r.set_label(pid, "qa", "production", {"version": 2}, role="admin", actor="pk-admin")["version"] == 2


def test_bad_versions_are_refused(store: Any) -> None:
    pid = make_project(store, "p").project_id
    with pytest.raises(PayloadTooLarge) as exc:
        create(store, pid, "big", prompt="x" * 1_000_001)
    assert exc.value.status_code == 413 and "limit of 1,000,000 bytes" in exc.value.message
    with pytest.raises(ValidationFailed, match="line 1, column 5"):
        create(store, pid, "bad", prompt="abc {{ x")
    with pytest.raises(ValidationFailed, match="unknown field"):
        create(store, pid, "bad", colour="red")
    with pytest.raises(ValidationFailed, match="reserved"):
        create(store, pid, "a/labels/b")
    with pytest.raises(ValidationFailed, match="tags"):
        create(store, pid, "bad", tags="x")
    assert store.prompts.list_prompts(pid).items == []
    create(store, pid, "ok")
    with pytest.raises(Conflict, match="is at version 1 on the server, but this change is based on version 0"):
        create(store, pid, "ok", base_version=0)
    assert create(store, pid, "ok", base_version=1)["version"] == 2
    with pytest.raises(Conflict, match="does not exist"):
        create(store, pid, "new", base_version=3)


def test_concurrent_versions_get_distinct_numbers(store: Any) -> None:
    pid = make_project(store, "p").project_id
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        try:
            start.wait()
            for j in range(5):
                v = create(store, pid, "hot", prompt=f"worker {i} edit {j} {{{{q}}}}", labels=["staging"])
                with lock:
                    results.append(v["version"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(1, 41))
    assert store.prompts.get_prompt(pid, "hot")["latest_version"] == 40
    stored = {v["prompt"] for v in store.prompts.list_versions(pid, "hot", limit=100).items}
    assert len(stored) == 40
    hist = store.prompts.label_history(pid, "hot", "staging", limit=100).items
    assert sorted(e["seq"] for e in hist) == list(range(1, 41))


def test_concurrent_label_moves_keep_a_consistent_history(store: Any) -> None:
    pid = make_project(store, "p").project_id
    for _ in range(3):
        create(store, pid, "qa")
    r = reg(store)
    errors: list[BaseException] = []

    def mover(i: int) -> None:
        try:
            for j in range(6):
                r.set_label(pid, "qa", "production", {"version": 1 + (i + j) % 3}, role="member", actor=f"pk-{i}")
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=mover, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    hist = list(reversed(store.prompts.label_history(pid, "qa", "production", limit=100).items))
    assert [e["seq"] for e in hist] == list(range(1, len(hist) + 1))
    for prev, cur in itertools.pairwise(hist):  # every move starts where the previous one ended
        assert cur["from_targets"] == prev["to_targets"]
    assert store.prompts.get_label(pid, "qa", "production")["targets"] == hist[-1]["to_targets"]


def _span(builder: BatchBuilder, trace: str, sid: str, *, version: int | None, ms: int, name: str = "qa",
          tokens: tuple[int, int] = (10, 5), cost: float = 0.001, error: bool = False) -> None:
    builder.add_span(SpanIn.model_validate({
        "id": sid, "trace_id": trace, "name": "llm", "kind": "generation", "start_time": T0.isoformat(),
        "end_time": (T0 + timedelta(milliseconds=ms)).isoformat(), "status": "error" if error else "ok",
        "model": "m", "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]}, "cost": {"total": cost},
        "prompt_name": name, "prompt_version": version,
    }))


def test_analytics_per_version(store: Any) -> None:
    pid = make_project(store, "p").project_id
    create(store, pid, "qa")
    create(store, pid, "qa", labels=["production"])
    create(store, pid, "qa")
    b = BatchBuilder(pid, lambda: None)  # type: ignore[arg-type, return-value]
    for i, ms in enumerate([400, 100, 300, 200]):
        _span(b, f"t1-{i}", "s", version=1, ms=ms)
    _span(b, "t2-a", "s", version=2, ms=50, tokens=(100, 50), cost=0.01)
    _span(b, "t2-b", "s", version=2, ms=1000, tokens=(100, 50), cost=0.03, error=True)
    _span(b, "t2-b", "s2", version=2, ms=10, tokens=(1, 1), cost=0.0)  # same trace, second call
    _span(b, "tx", "s", version=None, ms=70)  # a fallback: name without version
    _span(b, "ty", "s", version=1, ms=5, name="other")  # another prompt
    for sid, trace, span, value, dtype in [
        ("sc1", "t1-0", None, 1.0, "numeric"), ("sc2", "t1-1", None, 0.0, "numeric"),
        ("sc3", "t2-b", "s", 0.5, "numeric"), ("sc4", "t2-b", None, True, "boolean"),
        ("sc5", "t2-a", None, "good", "categorical"), ("sc6", "ty", None, 1.0, "numeric"),
    ]:
        b.add_score(ScoreIn.model_validate({"id": sid, "name": "helpful" if dtype != "boolean" else "thumbs",
                                            "trace_id": trace, "span_id": span, "value": value, "data_type": dtype}))
    store.ingest.write(b.batch)
    rows = {r["version"]: r for r in store.prompts.analytics(pid, "qa")}
    assert list(rows) == [3, 2, 1, None]
    v1, v2, v3 = rows[1], rows[2], rows[3]
    assert (v1["count"], v1["traces"], v1["errors"]) == (4, 4, 0)
    assert v1["latency_ms"] == {"avg": pytest.approx(250), "p50": pytest.approx(200), "p95": pytest.approx(400),
                                "max": pytest.approx(400)}
    assert (v1["input_tokens"], v1["output_tokens"], v1["total_tokens"]) == (40, 20, 60)
    assert v1["cost"]["total"] == pytest.approx(0.004) and v1["cost"]["avg"] == pytest.approx(0.001)
    assert v1["scores"] == {"helpful": {"avg": pytest.approx(0.5), "count": 2}}
    assert (v2["count"], v2["traces"], v2["errors"], v2["error_rate"]) == (3, 2, 1, pytest.approx(1 / 3))
    assert v2["latency_ms"]["p50"] == pytest.approx(50) and v2["latency_ms"]["p95"] == pytest.approx(1000)
    assert v2["cost"]["total"] == pytest.approx(0.04) and v2["labels"] == ["production"]
    assert v2["scores"] == {"helpful": {"avg": pytest.approx(0.5), "count": 1},
                            "thumbs": {"avg": pytest.approx(1.0), "count": 1}}
    assert v3["count"] == 0 and v3["latency_ms"]["p50"] is None and v3["labels"] == ["latest"]
    assert rows[None]["count"] == 1 and rows[None]["labels"] == []
    only = store.prompts.analytics(pid, "qa", version=2)
    assert [r["version"] for r in only] == [2]
    assert all(r["count"] == 0 for r in store.prompts.analytics(pid, "qa", start=T0 + timedelta(days=1)))

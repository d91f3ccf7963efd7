"""Prompt analytics on the columnar span store (ClickHouse through chDB): the prompt registry's own
analytics test re-run with the columnar store selected, and a differential test: the same random
calls, wrappers, re-sent spans and scores in the SQL store and in ClickHouse must give the same
per-version figures for every window and version filter."""

# ruff: noqa: F811
from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.store import Store
from podium.store.columnar import ColumnarPromptRepo
from podium.store.repos.ingest import IngestBatch
from tests.prompts.test_repo import test_analytics_per_version  # noqa: F401
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_store import T0, span


def test_the_store_hands_out_the_columnar_prompt_repo(store: Store) -> None:
    assert isinstance(store.prompts, ColumnarPromptRepo)


def _prompt(s: Store, pid: str, name: str, versions: int) -> None:
    for _ in range(versions):
        s.prompts.create_version(pid, name, type="text", template="Q: {{q}}", template_format="mustache",
                                 config=None, variables=["q"], placeholders=[], size_bytes=8)


def _call(pid: str, tid: str, sid: str, rng: random.Random, *, prompt: str | None, version: int | None,
          parent: str | None = None, start: Any = None, usage: bool = True) -> dict[str, Any]:
    start = start or T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
    ms = rng.choice([None, *range(10, 2000, 10)])  # whole milliseconds: sums are exact in both stores
    kw: dict[str, Any] = {}
    if usage:
        tin, tout = rng.randrange(1, 500), rng.randrange(0, 300)
        kw = {"input_tokens": tin, "output_tokens": tout, "total_tokens": tin + tout,
              "cost_total": Decimal(rng.randrange(0, 10_000)) / Decimal(1_000_000)}
    return span(pid, tid, sid, parent_id=parent, kind="generation", model="m", start_time=start,
                end_time=None if ms is None else start + timedelta(milliseconds=ms), latency_ms=None if ms is None
                else float(ms), status=rng.choice(["ok", "ok", "ok", "error"]), prompt_name=prompt,
                prompt_version=version, **kw)


def _seed(s: Store, pid: str, rng: random.Random) -> None:
    _prompt(s, pid, "qa", 3)
    _prompt(s, pid, "other", 1)
    spans: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    for i in range(80):
        tid = f"t{i:02d}"
        prompt = rng.choice(["qa", "qa", "qa", "other", None])
        version = rng.choice([1, 2, 3, None]) if prompt == "qa" else (1 if prompt else None)
        spans.append(_call(pid, tid, f"{tid}-a", rng, prompt=prompt, version=version))
        if rng.random() < 0.3:  # a second call of the trace
            spans.append(_call(pid, tid, f"{tid}-b", rng, prompt=prompt, version=version))
        if rng.random() < 0.25:  # a wrapper naming the prompt, the gateway call under it reports usage
            start = T0 + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
            spans.append(_call(pid, tid, f"{tid}-w", rng, prompt="qa", version=2, start=start))
            spans.append(_call(pid, tid, f"{tid}-gw", rng, prompt=None, version=None, parent=f"{tid}-w",
                               start=start + timedelta(milliseconds=5)))
        for k in range(rng.randrange(0, 4)):
            on_span = rng.random() < 0.4
            dtype = rng.choice(["numeric", "numeric", "boolean", "categorical"])
            value = (rng.randrange(0, 9) / 8 if dtype == "numeric" else float(rng.random() < 0.5)
                     if dtype == "boolean" else None)
            scores.append({"project_id": pid, "id": f"{tid}-sc{k}", "trace_id": tid,
                           "span_id": rng.choice([f"{tid}-a", f"{tid}-w", f"{tid}-x"]) if on_span else None,
                           "session_id": None, "name": rng.choice(["helpful", "thumbs"]), "data_type": dtype,
                           "value": value, "string_value": "good" if dtype == "categorical" else None,
                           "source": "api", "comment": None, "metadata": None, "timestamp": T0})
    s.ingest.write(IngestBatch(spans=spans, scores=scores))
    # Re-sends: a later version moves a call to another prompt version, out of the prompt, or later.
    again = []
    for r in spans[::7]:
        moved = dict(r, prompt_version=rng.choice([1, 3, None]))
        if rng.random() < 0.3:
            moved["prompt_name"] = "other"
        if rng.random() < 0.3:
            moved["start_time"] = r["start_time"] + timedelta(days=2)
        again.append(moved)
    s.ingest.write(IngestBatch(spans=again))


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows less their write times (the two stores created the versions at different moments)."""
    return [{k: v for k, v in r.items() if k != "created_at"} for r in rows]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_prompt_analytics_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:
    a = sql_store.projects.create_project("on-sql").id
    b = store.projects.create_project("on-clickhouse").id
    _seed(sql_store, a, random.Random(seed))
    _seed(store, b, random.Random(seed))
    windows: list[dict[str, Any]] = [
        {}, {"start": T0 + timedelta(days=1)}, {"end": T0 + timedelta(days=2)},
        {"start": T0 + timedelta(hours=12), "end": T0 + timedelta(hours=60)}, {"version": 2}, {"version": 3},
        {"start": T0 + timedelta(days=10)},
    ]
    seen = 0
    for name in ("qa", "other"):
        for kw in windows:
            want = _strip(sql_store.prompts.analytics(a, name, **kw))
            got = _strip(store.prompts.analytics(b, name, **kw))
            assert got == want, (name, kw)
            seen += sum(r["count"] for r in want)
            assert [list(r["scores"]) for r in got] == [list(r["scores"]) for r in want]  # the same order
    assert seen > 100  # the windows saw calls, scores and versions
    rows = sql_store.prompts.analytics(a, "qa")
    assert any(r["version"] is None for r in rows) and any(r["scores"] for r in rows)

"""Retention and data-subject requests on the columnar span store (ClickHouse through chDB): the
SQL store's own governance tests re-run with the columnar store selected (their seed helpers write
the span store's rows to ClickHouse), tombstones, and a differential test: the same data in the SQL
store and in ClickHouse must give the same counts, purges, receipts and exports."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.config import Settings
from podium.governance.actor import Actor
from podium.governance.retention import run_retention
from podium.governance.subject_requests import delete_subject, export_subject
from podium.store import Store
from podium.store import tables as t
from podium.store.repos.ingest import IngestBatch
from podium.store.repos.traces import TraceFilter
from tests.conftest import make_project
from tests.governance import test_retention, test_retention_ui_cli, test_subject_requests
from tests.governance.lifecycle_seed import add_annotation, add_dataset_item, ago

# The SQL store's tests, collected again against the columnar store (the fixtures below replace the
# conftest ones for this module; `columnar_seed` points their seed helpers at ClickHouse).
from tests.governance.test_retention import (  # noqa: F401
    test_each_kind_deletes_exactly_what_is_older_than_its_period,
    test_every_worker_runs_the_retention_job,
    test_legal_hold_stops_retention_and_the_job,
    test_purge_goes_in_batches_oldest_first_and_splits_big_traces,
    test_zero_keeps_forever_and_null_inherits_the_installation_default,
)
from tests.governance.test_retention_ui_cli import (  # noqa: F401
    test_cli_retention_legal_hold_and_subjects,
    test_ui_pages_set_periods_hold_dry_run_and_delete,
)
from tests.governance.test_subject_requests import (  # noqa: F401
    EXPECTED,
    test_api_admin_only_audited_and_refused_under_hold,
    test_export_holds_what_was_there,
    test_legal_hold_refuses_deletion,
)
from tests.store.columnar_fixtures import (  # noqa: F401
    ch_count,
    ch_ids,
    chdb_dir,
    columnar,
    columnar_url,
    sql_store,
    store,
    use_columnar_seed,
)
from tests.store.test_store import span

ADMIN = Actor("cli", "dpo")


@pytest.fixture(autouse=True)
def columnar_seed(monkeypatch: pytest.MonkeyPatch, columnar_url: str) -> None:  # noqa: F811
    use_columnar_seed(monkeypatch, test_retention, test_subject_requests, test_retention_ui_cli)
    # the CLI opens its own store from the settings: the same ClickHouse database
    monkeypatch.setenv("PODIUM_SPAN_STORE", "clickhouse")
    monkeypatch.setenv("PODIUM_CLICKHOUSE_URL", columnar_url)


def test_the_store_hands_out_the_columnar_lifecycle(store: Store) -> None:  # noqa: F811
    assert type(store.lifecycle).__name__ == "ColumnarLifecycleRepo"
    assert type(store.drift).__name__ == "ColumnarDriftRepo"
    assert type(store.online_evals).__name__ == "ColumnarOnlineEvalRepo"


def test_delete_reaches_every_table_and_the_receipt_counts_what_was_there(store: Store) -> None:  # noqa: F811
    """tests/governance/test_subject_requests.py's test of the same name, reading ClickHouse's scores."""
    p = make_project(store, "p")
    other = make_project(store, "other")
    test_subject_requests._seed(store, p.project_id)
    test_subject_requests._seed(store, other.project_id)
    before = store.lifecycle.subject_counts(p.project_id, "u1")
    assert before == {**dict.fromkeys(before, 0), **EXPECTED}

    receipt = delete_subject(store, Settings(), p.project_id, "u1", actor=ADMIN, batch=3)
    assert receipt.counts == before
    assert sum(store.lifecycle.subject_counts(p.project_id, "u1").values()) == 0
    assert ch_ids(store, t.score, p.project_id) == {"u2-a-sc0", "fb-u2"}
    assert ch_count(store, t.trace, p.project_id) == 1 and ch_count(store, t.span, p.project_id) == 2
    assert ch_count(store, t.dataset_item, p.project_id) == 1 and ch_count(store, t.annotation, p.project_id) == 1
    assert store.lifecycle.subject_counts(other.project_id, "u1") == before
    (stored,) = store.lifecycle.requests(p.project_id, user_id="u1")
    assert stored.counts == receipt.counts and "secret" not in json.dumps(stored.as_dict())


def test_deletes_are_tombstones_and_the_trace_can_come_back(store: Store) -> None:  # noqa: F811
    """Span, trace and score rows get a tombstone (a newer version with is_deleted = 1); tags are
    deleted. A span re-sent for a purged trace starts a new trace, without the old spans."""
    assert store.columnar is not None
    ch = store.columnar
    pid = make_project(store, "p").project_id
    old = ago(40)
    store.ingest.write(IngestBatch(
        spans=[span(pid, "t1", "a", start_time=old, input={"q": "x"}), span(pid, "t1", "b", start_time=old)],
        tags=[(pid, "t1", "red")],
        scores=[{"project_id": pid, "id": "s1", "trace_id": "t1", "span_id": None, "session_id": None,
                 "name": "q", "data_type": "numeric", "value": 1.0, "string_value": None, "source": "api",
                 "comment": None, "metadata": None, "timestamp": old}]))
    res = store.lifecycle.purge(pid, {"traces": ago(30)}, pause_s=0)
    assert {k: v for k, v in res.counts.items() if v} == {"trace": 1, "span": 2, "score": 1, "trace_tag": 1}
    for table in ("span", "trace", "score"):
        assert ch.query(f"SELECT count() FROM $db.{table} FINAL")[0][0] == 0
        assert ch.query(f"SELECT count() FROM $db.{table} WHERE is_deleted = 1")[0][0] >= 1
    assert ch.query("SELECT count() FROM $db.trace_tag")[0][0] == 0
    # a second purge finds nothing
    assert store.lifecycle.purge(pid, {"traces": ago(30), "scores": ago(30)}, pause_s=0).total == 0

    store.ingest.write(IngestBatch(spans=[span(pid, "t1", "c", start_time=ago(1))]))
    tr = store.traces.get_trace(pid, "t1")
    assert tr["span_count"] == 1 and tr["tags"] == []
    assert [s["id"] for s in store.traces.list_spans(pid, "t1").items] == ["c"]


# --- differential: the same data in SQL and in ClickHouse ------------------------------------------


def _seed_random(s: Store, pid: str, rng: random.Random) -> None:
    """Traces (some from the gateway) of four users over 90 days through the store's write path, scores
    on them and feedback naming users, and in SQL annotations and dataset items on some traces."""
    spans: list[Any] = []
    hints: list[Any] = []
    tags: list[Any] = []
    scores: list[Any] = []
    for i in range(40):
        tid = f"tr{i:02d}"
        start = ago(rng.uniform(0, 90))
        gateway = rng.random() < 0.25
        for k in range(rng.randint(1, 7)):
            spans.append(span(pid, tid, f"{tid}-{k}", parent_id=None if k == 0 else f"{tid}-0",
                              start_time=start + timedelta(seconds=k), input={"secret": f"{tid}/{k}"}))
        hints.append({"project_id": pid, "id": tid, "user_id": rng.choice(["u0", "u1", "u2", "u3", None]),
                      "session_id": None, "release": None, "environment": None, "metadata": None,
                      "name": "gateway gpt" if gateway else (f"job {i}" if rng.random() < 0.5 else None)})
        tags += [(pid, tid, f"tag{j}") for j in range(rng.randint(0, 2))]
        for j in range(rng.randint(0, 3)):
            scores.append({"project_id": pid, "id": f"{tid}-sc{j}", "trace_id": tid, "span_id": None,
                           "session_id": None, "name": "quality", "data_type": "numeric", "value": rng.random(),
                           "string_value": None, "source": "api", "comment": None, "metadata": None,
                           "timestamp": start + timedelta(days=rng.uniform(0, 20))})
    for j in range(15):  # feedback: on a trace or a session, naming a user
        scores.append({"project_id": pid, "id": f"fb{j}", "trace_id": f"tr{rng.randint(0, 39):02d}"
                       if rng.random() < 0.7 else None, "span_id": None, "session_id": None, "name": "thumbs",
                       "data_type": "numeric", "value": 1.0, "string_value": None, "source": "feedback",
                       "comment": None, "metadata": {"user_id": rng.choice(["u0", "u1", "u2"])},
                       "timestamp": ago(rng.uniform(0, 90))})
    s.ingest.write(IngestBatch(spans=spans, traces=hints, tags=tags, scores=scores))
    for i in rng.sample(range(40), 6):
        add_annotation(s, pid, f"tr{i:02d}")
    for i in rng.sample(range(40), 6):
        add_dataset_item(s, pid, f"tr{i:02d}", source_trace_id=f"tr{i:02d}", experiment=rng.random() < 0.5)
    add_dataset_item(s, pid, "named", source_trace_id=None, metadata={"user_id": "u1"})


def _export(s: Store, pid: str, user: str) -> dict[str, Any]:
    doc = json.loads("".join(export_subject(s, pid, user)))
    doc.pop("exported_at")

    def strip(v: Any) -> Any:  # the project ids and write times differ between the two stores
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in ("project_id", "updated_at")}
        return [strip(x) for x in v] if isinstance(v, list) else v

    doc = strip(doc)
    for tr in doc["traces"]:
        tr["spans"].sort(key=lambda x: (x["start_time"], x["id"]))
        tr["scores"].sort(key=lambda x: x["id"])
    doc["feedback"].sort(key=lambda x: x["id"])
    doc["dataset_items"].sort(key=lambda x: x["id"])
    return dict(doc)


@pytest.mark.parametrize("seed", [1, 2])
def test_same_retention_and_receipts_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:  # noqa: F811
    # Both stores share the SQL database (annotations, dataset items): one project each, same data.
    a = make_project(sql_store, "on-sql").project_id
    b = make_project(store, "on-clickhouse").project_id
    _seed_random(sql_store, a, random.Random(seed))
    _seed_random(store, b, random.Random(seed))

    for user in ("u0", "u1", "u2", "u3", "nobody"):
        assert store.lifecycle.subject_counts(b, user) == sql_store.lifecycle.subject_counts(a, user), user
        assert _export(store, b, user) == _export(sql_store, a, user), user
    for cutoffs in ({"traces": ago(60)}, {"gateway": ago(20)}, {"scores": ago(45)},
                    {"traces": ago(70), "gateway": ago(10), "scores": ago(30)}):
        assert store.lifecycle.count_expired(b, cutoffs) == sql_store.lifecycle.count_expired(a, cutoffs), cutoffs

    # a purge of every kind: the same rows go (the job's batches; then batches of 5 rows, so that
    # traces of up to 8 rows lose their spans over several batches)
    settings = Settings(retention_pause_ms=0)
    for s, pid in ((sql_store, a), (store, b)):
        s.lifecycle.set_periods(pid, {"traces": 80, "gateway": 40}, actor="t")
    dry_sql = run_retention(sql_store, settings, a, actor=ADMIN, dry_run=True)
    dry_ch = run_retention(store, settings, b, actor=ADMIN, dry_run=True)
    assert dry_ch.counts == dry_sql.counts and dry_ch.counts["trace"] > 0
    run_sql = run_retention(sql_store, settings, a, actor=ADMIN)
    run_ch = run_retention(store, settings, b, actor=ADMIN)
    assert run_ch.counts == run_sql.counts == dry_sql.counts
    cutoffs = {"traces": ago(60), "gateway": ago(10), "scores": ago(30)}
    expected = sql_store.lifecycle.count_expired(a, cutoffs)
    assert store.lifecycle.count_expired(b, cutoffs) == expected and expected["span"] > 0
    res_sql = sql_store.lifecycle.purge(a, cutoffs, batch=5, pause_s=0)
    res_ch = store.lifecycle.purge(b, cutoffs, batch=5, pause_s=0)
    assert res_ch.counts == res_sql.counts == expected
    assert res_ch.batches == res_sql.batches
    assert sorted(r["id"] for r in store.traces.list_traces(b, TraceFilter(), limit=100).items) == sorted(
        r["id"] for r in sql_store.traces.list_traces(a, TraceFilter(), limit=100).items)

    # data-subject deletions: the same receipts, then nothing left about them
    for user in ("u1", "u2"):
        r_sql = delete_subject(sql_store, Settings(), a, user, actor=ADMIN, batch=5)
        r_ch = delete_subject(store, Settings(), b, user, actor=ADMIN, batch=5)
        assert r_ch.counts == r_sql.counts, user
        assert sum(store.lifecycle.subject_counts(b, user).values()) == 0
    for user in ("u0", "u3"):
        assert store.lifecycle.subject_counts(b, user) == sql_store.lifecycle.subject_counts(a, user), user
        assert _export(store, b, user) == _export(sql_store, a, user), user

"""New traces inserted final (``IngestRepo.final_inserts``) store exactly what the general path stores.

The general path inserts a trace zeroed, then recomputes its usage flags and aggregates from its
spans in SQL; a trace new to the database now gets its final row (and its spans their final usage
flags and prompt links) computed in Python from the batch. Differential: the same random batches
(traces split across batches, re-sends, late span ends, partial rows, duplicates in a batch, trace
items alone, hints, tags, scores, gateway twins, prompt links, roots starting together, costs
with more than 10 decimals or as floats, which take the general path) are written to one project through the general path and to another through the new
one, with the same clock; after every batch the raw stored rows (driver values, types included) of
trace, span, trace_tag and score must be identical. On SQLite and PostgreSQL (``--db all``).
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text

from podium.store.repos import ingest as ri
from podium.store.repos.ingest import IngestBatch, IngestRepo
from tests.store.test_store import span

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
KINDS = ["span", "generation", "tool", "retrieval", "agent", "chain"]


def _cost(rng: random.Random) -> Decimal | float | None:
    x = rng.random()
    if x < 0.15:
        return None
    if x < 0.2:  # more than 10 decimals: left to the general path
        return Decimal(f"{rng.random() / 1000:.14f}")
    if x < 0.23:  # not a Decimal (a test helper's float): the general path too
        return rng.random() / 100
    if x < 0.25:
        return Decimal(0)
    if x < 0.26:  # negative (a refund?): the general path
        return Decimal("-0.0001")
    return Decimal(str(round(rng.random() * rng.choice([0.001, 0.05, 2.0]), 10)))


def make_trace(rng: random.Random, k: int) -> dict[str, Any]:
    """Spans of one trace (dicts without project_id) and its trace-level extras."""
    tid = f"t{k:05d}"
    n = rng.choice([1, 1, 1, 2, 3, 5, 8, 12])
    t0 = T0 + timedelta(seconds=rng.randint(0, 86_400), microseconds=rng.randint(0, 999_999))
    spans: list[dict[str, Any]] = []
    for i in range(n):
        sid = f"{tid}-s{i}"
        # a root first, sometimes a second one
        parent = None if i == 0 or rng.random() < 0.06 else spans[rng.randrange(len(spans))]["id"]
        start = t0 + timedelta(microseconds=rng.randint(0, 3_000_000)) if i else t0
        if parent is None and i and rng.random() < 0.3:
            start = t0  # starts with the first root: the refresh orders them by id
        s: dict[str, Any] = {
            "id": sid, "trace_id": tid, "parent_id": parent, "name": f"op-{rng.randint(0, 9)}",
            "kind": rng.choice(KINDS), "start_time": start,
            "end_time": start + timedelta(microseconds=rng.randint(0, 5_000_000)) if rng.random() < 0.85 else None,
            "status": rng.choice(["ok", "ok", "ok", "unset", "error"]),
            "input": rng.choice([None, {"q": f"question {i}"}, [1, 2, {"a": None}], "plain text", 3.5]),
            "output": rng.choice([None, {"a": f"answer {i}"}, "done"]),
            "metadata": rng.choice([None, {"k": i}, {"gateway": None}, [1]]),
        }
        if rng.random() < 0.55:  # usage
            itok, otok = rng.randint(0, 900), rng.randint(0, 300)
            s.update(input_tokens=itok, output_tokens=otok, total_tokens=itok + otok,
                     usage_estimated=rng.random() < 0.2, cost_total=_cost(rng), model="m", kind="generation")
            if rng.random() < 0.1:
                s["total_tokens"] = None  # cost alone
        if rng.random() < 0.15:
            s["prompt_name"], s["prompt_version"] = f"p{rng.randint(0, 2)}", rng.choice([None, 1, 2])
        if rng.random() < 0.05 and "cost_total" in s:
            s["metadata"] = {"gateway": {"route": "r"}}
        spans.append(s)
        # a gateway span beside a client span of the same call (LangChain), same tokens
        if "total_tokens" in s and s["total_tokens"] is not None and rng.random() < 0.25:
            g = dict(s, id=f"{sid}-gw", start_time=start + timedelta(microseconds=rng.randint(0, 1000)),
                     metadata={"gateway": {"key": "k"}}, prompt_name=None, prompt_version=None)
            if rng.random() < 0.3:
                g["start_time"] = start  # tie with its client
            spans.append(g)
    extras: dict[str, Any] = {"tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 2))}
    if rng.random() < 0.4:
        extras["hint"] = {
            "id": tid, "name": rng.choice([None, "named"]), "user_id": rng.choice([None, "u1", "u2"]),
            "session_id": rng.choice([None, "s1"]), "release": None, "environment": rng.choice([None, "prod"]),
            "metadata": rng.choice([None, {"m": 1}]), "input": rng.choice([None, {"explicit": True}]),
            "output": rng.choice([None, "explicit out"]),
        }
        if rng.random() < 0.3:
            extras["hint"]["start_time"] = t0 - timedelta(seconds=5)
    return {"id": tid, "spans": spans, **extras}


def make_batches(rng: random.Random, n_traces: int, n_batches: int) -> list[dict[str, list[Any]]]:
    """Batches (lists of spans, hints, tags, scores; project-less) of the traces, in any split."""
    batches: list[dict[str, list[Any]]] = [{"spans": [], "traces": [], "tags": [], "scores": []}
                                           for _ in range(n_batches)]
    for k in range(n_traces):
        tr = make_trace(rng, k)
        home = rng.randrange(n_batches)
        split = rng.random() < 0.3
        for s in tr["spans"]:
            b = batches[min(n_batches - 1, home + rng.randint(0, 2)) if split else home]
            if s["end_time"] is not None and rng.random() < 0.15:
                # a late end: the start without end here, the end (a re-send) in a later batch
                early = dict(s, end_time=None, status="unset")
                b["spans"].append(early)
                later = batches[min(n_batches - 1, batches.index(b) + rng.randint(0, 2))]
                later["spans"].append(dict(s))
            else:
                b["spans"].append(dict(s))
            if rng.random() < 0.05:  # a duplicate in the same batch
                b["spans"].append(dict(s, output="again"))
            if rng.random() < 0.05:  # a re-send, later
                batches[min(n_batches - 1, home + 1)]["spans"].append(dict(s))
            if rng.random() < 0.04:  # a partial row (GenAI log event: no name, keeps the stored one)
                rng.choice(batches)["spans"].append(dict(s, name="", output={"event": 1}))
        if "hint" in tr:
            batches[home if rng.random() < 0.7 else rng.randrange(n_batches)]["traces"].append(tr["hint"])
        for tag in tr["tags"]:
            batches[home]["tags"].append((tr["id"], tag))
        if rng.random() < 0.2:
            batches[rng.randrange(n_batches)]["scores"].append(
                {"id": f"sc-{k}", "trace_id": tr["id"], "span_id": None, "session_id": None, "name": "q",
                 "data_type": "numeric", "value": rng.random(), "string_value": None, "source": "api",
                 "comment": None, "metadata": None, "timestamp": T0})
    # trace items alone, for traces that never get spans
    for k in range(rng.randint(1, 4)):
        batches[rng.randrange(n_batches)]["traces"].append(
            {"id": f"alone{k}", "name": rng.choice([None, "lonely"]), "user_id": "u9", "session_id": None,
             "release": "r1", "environment": None, "metadata": {"x": k}, "input": None, "output": None,
             "start_time": T0 + timedelta(minutes=k)})
    return batches


def for_project(b: dict[str, list[Any]], pid: str) -> IngestBatch:
    """The batch for one project: fresh dicts (the writer marks span rows)."""
    return IngestBatch(
        spans=[span(pid, **{k: copy.deepcopy(v) for k, v in s.items() if k not in ("trace_id", "id")},
                    trace_id=s["trace_id"], sid=s["id"]) for s in b["spans"]],  # type: ignore[misc]
        traces=[{"project_id": pid, **copy.deepcopy(h)} for h in b["traces"]],  # type: ignore[list-item]
        tags=[(pid, tr, tag) for tr, tag in b["tags"]],
        scores=[{"project_id": pid, **sc} for sc in b["scores"]],  # type: ignore[list-item]
    )


def stored(conn: Any, table: str, pid: str, key: str) -> list[list[tuple[str, str]]]:
    """Every row of ``table`` in project ``pid`` as driver values, typed (repr), without project_id."""
    res = conn.execute(text(f"SELECT * FROM {table} WHERE project_id = :p ORDER BY {key}"), {"p": pid})
    cols = list(res.keys())
    out = []
    for row in res.all():
        vals = dict(zip(cols, row, strict=True))
        vals.pop("project_id")
        out.append([(k, repr(v)) for k, v in sorted(vals.items())])
    return out


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [T0]
    monkeypatch.setattr(ri, "_utcnow", lambda: now[0])
    return now


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_final_inserts_store_what_the_general_path_stores(store: Any, clock: list[datetime], seed: int) -> None:
    rng = random.Random(seed)
    ref_pid = store.projects.create_project(f"general-{seed}").id
    new_pid = store.projects.create_project(f"final-{seed}").id
    general = IngestRepo(store.engine)
    general.final_inserts = False
    final = IngestRepo(store.engine)
    assert final.final_inserts
    # many traces per batch (COPY on PostgreSQL from 32 rows) and few (one statement)
    batches = make_batches(rng, 150, 3) + make_batches(rng, 60, 8) + make_batches(rng, 12, 6)
    updates = {"general": 0, "final": 0}
    which = ["general"]

    def count(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and cursor.rowcount > 0:
            updates[which[0]] += cursor.rowcount  # rows updated (trace aggregates, span flags and prompts)

    event.listen(store.engine, "after_cursor_execute", count)
    try:
        for n, b in enumerate(batches):
            clock[0] = T0 + timedelta(hours=n, microseconds=n)
            which[0] = "general"
            general.write(for_project(b, ref_pid))
            which[0] = "final"
            final.write(for_project(b, new_pid))
            with store.engine.connect() as c:
                for table, key in (("trace", "id"), ("span", "trace_id, id"), ("trace_tag", "trace_id, tag"),
                                   ("score", "id")):
                    ra, rb = stored(c, table, ref_pid, key), stored(c, table, new_pid, key)
                    assert ra == rb, (seed, n, table, _diff(ra, rb))
    finally:
        event.remove(store.engine, "after_cursor_execute", count)
    with store.engine.connect() as c:
        traces = c.execute(text("SELECT COUNT(*), SUM(span_count), SUM(total_tokens) FROM trace WHERE project_id = :p"),
                           {"p": new_pid}).one()
    assert traces[0] > 50 and traces[1] > 100 and traces[2] > 0  # the comparison had something to compare
    assert updates["final"] < updates["general"], updates  # the new traces took no UPDATE


def test_new_traces_take_no_update(store: Any, clock: list[datetime]) -> None:
    """A batch of new traces (usage on several spans, a prompt to link): inserts only, no UPDATE."""
    pid = store.projects.create_project("fresh").id
    spans = []
    for k in range(40):
        tid = f"n{k}"
        spans += [
            span(pid, tid, "root", name="agent", kind="agent", prompt_name="qa", prompt_version=3,
                 input_tokens=10, output_tokens=5, total_tokens=15, cost_total=Decimal("0.0015"),
                 usage_estimated=True, start_time=T0, end_time=T0 + timedelta(seconds=2), input={"q": k}),
            span(pid, tid, "call", parent_id="root", kind="generation", input_tokens=7, output_tokens=3,
                 total_tokens=10, cost_total=Decimal("0.0000123456"), usage_estimated=False,
                 start_time=T0 + timedelta(milliseconds=5), end_time=T0 + timedelta(seconds=1), status="error"),
        ]
    seen: list[str] = []
    listener = lambda conn, cur, stmt, *a: seen.append(stmt.lstrip()[:6].upper())  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listener)
    try:
        store.ingest.write(IngestBatch(spans=spans))
    finally:
        event.remove(store.engine, "before_cursor_execute", listener)
    assert "UPDATE" not in seen and "SELECT" not in seen, seen
    with store.engine.connect() as c:
        row = c.execute(text("SELECT span_count, error_count, status, input_tokens, total_tokens, total_cost, "
                             "latency_ms, name FROM trace WHERE project_id = :p AND id = 'n7'"), {"p": pid}).one()
        flags = dict(c.execute(text("SELECT id, usage_counted FROM span WHERE project_id = :p AND trace_id = 'n7'"),
                               {"p": pid}).all())
        prompt = c.execute(text("SELECT prompt_name, prompt_version FROM span WHERE project_id = :p "
                                "AND trace_id = 'n7' AND id = 'call'"), {"p": pid}).one()
    assert (row[0], row[1], row[2], row[3], row[4]) == (2, 1, "error", 7, 10)
    assert Decimal(str(row[5])) == Decimal("0.0000123456") and row[6] == 2000.0 and row[7] == "agent"
    assert {k: bool(v) for k, v in flags.items()} == {"root": False, "call": True}  # the wrapper's usage is the call's
    assert tuple(prompt) == ("qa", 3)  # the counted call takes its wrapper's prompt



def _diff(a: list[list[tuple[str, str]]], b: list[list[tuple[str, str]]]) -> list[Any]:
    """The columns that differ, row by row (for the assertion message)."""
    out: list[Any] = [len(a), len(b)]
    for x, y in zip(a, b, strict=False):
        if x != y:
            out.append([(k, v, w) for (k, v), (_, w) in zip(x, y, strict=True) if v != w] + [x[0]])
    return out[:6]


def test_a_trace_two_writers_create_at_once_counts_both(store: Any) -> None:
    """Two writers (two server processes) get spans of one new trace at the same moment: the first
    inserts it final; the second's INSERT waits for that commit, finds the row (RETURNING leaves it
    out) and takes the general path, so the trace counts the spans of both."""
    import threading

    pid = store.projects.create_project("race").id

    def one(sid: str, tokens: int) -> IngestBatch:
        return IngestBatch(spans=[span(pid, "shared", sid, kind="generation", input_tokens=tokens, output_tokens=0,
                                       total_tokens=tokens, cost_total=Decimal("0.001"), usage_estimated=False,
                                       start_time=T0, end_time=T0 + timedelta(seconds=1))])

    first, second = IngestRepo(store.engine), IngestRepo(store.engine)
    done = threading.Event()
    errors: list[BaseException] = []
    with store.engine.connect() as conn:
        tx = conn.begin()
        first._write(conn, one("a", 10))  # the trace row exists, uncommitted
        b = one("b", 5)

        def other() -> None:
            try:
                second.write(b)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        th = threading.Thread(target=other)
        th.start()
        assert not done.wait(0.5)  # waits for the first writer's transaction
        tx.commit()
    th.join(30)
    assert not errors and done.is_set()
    with store.engine.connect() as c:
        row = c.execute(text("SELECT span_count, total_tokens FROM trace WHERE project_id = :p AND id = 'shared'"),
                        {"p": pid}).one()
    assert tuple(row) == (2, 15)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_row_tuples_inline_the_column_converters(dialect: str) -> None:
    """``_row_tuple`` inlines the converters (times, numbers, booleans; JSON called only for a value):
    every column's driver value is the converter's, for times in any zone (pydantic's own UTC
    tzinfo, a +05:30 offset, a naive time), Decimals and floats, booleans and NULLs."""
    from datetime import timezone

    import pydantic

    from podium.store import tables as t

    class At(pydantic.BaseModel):
        t: datetime

    cols = [c for c in ri.SPAN_COLUMNS if c != "updated_at"]
    row = ri._row_tuple(t.span, cols, dialect)
    times = [T0, At.model_validate({"t": "2026-03-01T08:00:00.123456Z"}).t,
             datetime(2026, 3, 1, 13, 30, 0, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
             datetime(2026, 3, 1, 8, 0), None]
    rng = random.Random(5)
    for k in range(40):
        s = dict(span("p", "t", f"s{k}", start_time=rng.choice(times[:4]), end_time=rng.choice(times),
                      completion_start_time=rng.choice(times), input=rng.choice([None, {"q": "é"}, [1, None], "x"]),
                      cost_total=rng.choice([None, Decimal("0.0012"), 0.5]), usage_estimated=rng.choice([None, True, False]),
                      input_tokens=rng.choice([None, 3])))
        s["usage_counted"] = rng.choice([None, True, False])
        expect = tuple(ri._converter(t.span.c[c].type, dialect)(s[c]) for c in cols)
        got = row(s)
        assert got == expect and [type(v) for v in got] == [type(v) for v in expect], (k, s)

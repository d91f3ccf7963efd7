"""The audit log's hash chain on both databases: append, verify, tampering, concurrent writers."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text

from podium.governance.actor import Actor
from podium.governance.audit import verify
from podium.store import Store
from podium.store.repos.audit import GENESIS, VALUE_LIMIT, digest

ANA = Actor("user", "u-1", name="ana@example.com", role="admin", ip="10.0.0.7")


def _check(store: Any) -> Any:
    return verify(store.audit.iter_events(), store.audit.head())


def _fill(store: Any, n: int, project_id: str | None = None) -> list[Any]:
    return [store.audit.append(project_id=project_id, actor=ANA, action="prompt.label.move", target_type="prompt",
                               target_id=f"p{i}", before={"version": i}, after={"version": i + 1},
                               detail={"label": "production"}, status=200) for i in range(n)]


def test_append_links_events_and_verify_passes(store: Any, project: Any) -> None:
    assert _check(store).ok and store.audit.head() == (0, GENESIS)  # an empty log is intact
    events = _fill(store, 3, project.project_id)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    e = store.audit.get(2)
    assert e.actor_kind == "user" and e.actor_name == "ana@example.com" and e.ip == "10.0.0.7"
    assert e.before == {"version": 1} and e.after == {"version": 2}
    assert e.before_digest == digest({"version": 1}) and e.after_digest == digest({"version": 2})
    result = _check(store)
    assert result.ok and result.checked == 3 and result.head_seq == 3 and result.head_hash == events[2].hash


def test_large_values_keep_only_their_digest(store: Any) -> None:
    big = {"template": "x" * VALUE_LIMIT}
    e = store.audit.append(project_id=None, actor=ANA, action="prompt.version.create", before=None, after=big)
    assert e.after_value is None and e.after_digest == digest(big) and e.before_digest is None
    small = store.audit.get(e.seq)
    assert small is not None and small.after is None
    assert _check(store).ok


def test_a_changed_row_is_named(store: Any) -> None:
    _fill(store, 5)
    with store.engine.begin() as c:
        c.execute(text("UPDATE audit_event SET actor_id = 'someone-else' WHERE seq = 3"))
    r = _check(store)
    assert not r.ok and r.broken_seq == 3 and "changed" in (r.reason or "")


def test_a_changed_value_is_named(store: Any) -> None:
    _fill(store, 4)
    with store.engine.begin() as c:
        c.execute(text("UPDATE audit_event SET after_value = :v WHERE seq = 2"), {"v": '{"version":99}'})
    r = _check(store)
    assert not r.ok and r.broken_seq == 2


def test_a_deleted_row_is_named(store: Any) -> None:
    _fill(store, 5)
    with store.engine.begin() as c:
        c.execute(text("DELETE FROM audit_event WHERE seq = 2"))
    r = _check(store)
    assert not r.ok and r.broken_seq == 2 and "missing" in (r.reason or "")


def test_deleting_the_newest_rows_is_detected(store: Any) -> None:
    _fill(store, 4)
    with store.engine.begin() as c:
        c.execute(text("DELETE FROM audit_event WHERE seq >= 3"))
    r = _check(store)
    assert not r.ok and r.broken_seq == 3 and r.head_seq == 4


def test_a_rewritten_hash_breaks_the_next_link(store: Any) -> None:
    _fill(store, 4)
    with store.engine.begin() as c:  # edit and re-hash event 2 by hand: event 3 no longer follows it
        c.execute(text("UPDATE audit_event SET hash = :h WHERE seq = 2"), {"h": "f" * 64})
    r = _check(store)
    assert not r.ok and r.broken_seq == 2  # its own hash no longer matches its fields


def test_concurrent_appends_keep_one_chain(store: Any, db_url: str) -> None:
    """Eight threads over two engines (as two server processes would) append 25 events each."""
    other = Store.from_url(db_url, migrate=False)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        s = store if i % 2 else other
        try:
            for j in range(25):
                s.audit.append(project_id=None, actor=Actor("system", f"t{i}"), action="test.append",
                               target_id=f"{i}-{j}")
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    other.close()
    assert not errors
    seqs = [e.seq for e in store.audit.iter_events()]
    assert seqs == list(range(1, 201))
    r = _check(store)
    assert r.ok and r.checked == 200 and r.head_seq == 200


def test_list_filters_and_cursor(store: Any, project: Any) -> None:
    _fill(store, 3, project.project_id)
    store.audit.append(project_id=project.project_id, actor=Actor("key", "pk-x"), action="key.create",
                       target_type="key", target_id="pk-y")
    store.audit.append(project_id="another", actor=ANA, action="key.create")
    a = store.audit
    assert [e["action"] for e in a.list_events(project.project_id, action="key").items] == ["key.create"]
    assert a.list_events(project.project_id, action="prompt.lab").items == []  # prefixes end at a dot
    assert len(a.list_events(project.project_id, action="prompt.label").items) == 3
    assert len(a.list_events(project.project_id, actor="ana@example.com").items) == 3
    assert [e["target_id"] for e in a.list_events(project.project_id, target_type="prompt", target_id="p1").items] \
        == ["p1"]
    first = a.list_events(project.project_id, limit=2)
    assert [e["id"] for e in first.items] == [4, 3] and first.next_cursor
    rest = a.list_events(project.project_id, limit=2, cursor=first.next_cursor)
    assert [e["id"] for e in rest.items] == [2, 1] and rest.next_cursor is None
    assert len(a.list_events(None).items) == 5  # the CLI sees the whole installation

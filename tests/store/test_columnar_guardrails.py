"""The guardrails page's statistics on the columnar span store (ClickHouse through chDB): the SQL
repo's tests re-run over ``store.guardrails`` with the columnar store selected, and a differential
test: the same random decisions and false-positive marks on the SQL store and on ClickHouse give the
same statistics for several windows and sample sizes."""

# ruff: noqa: F811
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

pytest.importorskip("chdb", reason="the columnar extra is not installed: pip install -e '.[columnar]'")

from podium.store import Store
from podium.store.columnar import ColumnarGuardrailRepo
from podium.store.repos.guardrails import FALSE_POSITIVE
from tests.store import test_guardrails_repo
from tests.store.columnar_fixtures import chdb_dir, columnar, columnar_url, sql_store, store  # noqa: F401
from tests.store.test_guardrails_repo import (  # noqa: F401
    NOW,
    _write,
    test_false_positive_marks_and_the_cap,
    test_stats_by_action_and_rule,
)
from tests.ui.guard_seed import allow, guard_batch, injection_block, pii_redact, timeout_flag


@pytest.fixture(autouse=True)
def _repo_of_the_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SQL tests build ``GuardrailRepo(store.engine)``; here they get ``store.guardrails``."""
    if "store" in request.fixturenames:
        s = request.getfixturevalue("store")
        monkeypatch.setattr(test_guardrails_repo, "GuardrailRepo", lambda engine: s.guardrails)
    yield


def test_the_store_hands_out_the_columnar_guardrail_repo(store: Store) -> None:
    assert isinstance(store.guardrails, ColumnarGuardrailRepo)


def _seed(s: Store, pid: str, rng: random.Random) -> None:
    kinds = [lambda: injection_block(float(rng.randrange(1, 9))), pii_redact, allow, timeout_flag]
    for i in range(40):
        _write(s, pid, guard_batch(f"t{i:02d}", rng.choice(kinds)(),
                                   NOW - timedelta(minutes=rng.randrange(0, 3 * 24 * 60)), with_llm=rng.random() < 0.5))
    for i in rng.sample(range(40), 12):
        _write(s, pid, [{"type": "score", "body": {
            "name": FALSE_POSITIVE, "value": rng.random() < 0.8, "trace_id": f"t{i:02d}",
            "span_id": f"t{i:02d}-guard" if rng.random() < 0.9 else None, "source": "human",
            "metadata": {"rule": rng.choice(["prompt-injection", "pii", "toxicity"])},
            "timestamp": (NOW - timedelta(minutes=rng.randrange(0, 2 * 24 * 60), seconds=i)).isoformat()}}])


@pytest.mark.parametrize("seed", [1, 2])
def test_same_guardrail_stats_as_the_sql_store(store: Store, sql_store: Store, seed: int) -> None:
    a = sql_store.projects.create_project("on-sql").id
    b = store.projects.create_project("on-clickhouse").id
    _seed(sql_store, a, random.Random(seed))
    _seed(store, b, random.Random(seed))
    seen = 0
    for hours, limit in ((1, 20_000), (24, 20_000), (24 * 4, 20_000), (24 * 4, 7), (36, 3)):
        start = NOW - timedelta(hours=hours)
        want = sql_store.guardrails.stats(a, start, NOW, limit=limit)
        got = store.guardrails.stats(b, start, NOW, limit=limit)
        assert got == want, (hours, limit)
        seen += want.total + want.false_positives
    assert seen > 60

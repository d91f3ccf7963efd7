"""Many stateless processes on one PostgreSQL + Redis (docs/deploy.md).

Two ``podium up`` servers, two ``podium gateway`` processes and two ``podium worker`` processes run
as real subprocesses on free ports, started at the same time on an EMPTY schema (they migrate it
and create the default project concurrently), with the tests' fake OpenAI-protocol upstream
behind the gateways. Driven together, they must show:

(a) spans sent round-robin to both servers are all stored, each once (acknowledged = stored);
(b) a budget and a rate limit are exact across the two gateways (N allowed, the rest 429);
(c) a prompt label move and a key revocation are seen by every process within the documented
    time (servers read labels from the database on each request; revocations travel over Redis
    pub/sub, with the 0.5 s revocation-marker poll as the fallback);
(d) a worker killed with SIGKILL mid-job: its leased jobs go to the other worker once the lease
    (``PODIUM_ONLINE_EVAL_LEASE_S``) runs out, and every trace ends with exactly one score.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.gateway.fake_upstream import FakeUpstream, Hang, Reply
from tests.scale._procs import REDIS_URL, Cluster, Proc, fresh_pg_schema, tail

# Six interpreters start at once: a few seconds each on a quiet machine (cold start ~2.7 s, docs/benchmarks.md),
# over two minutes on the shared 2-core machine at load averages of 20+.
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

#: Lease of a claimed online-evaluation batch in the workers (the default is 300 s).
LEASE_S = 5.0
#: USD per 1M input / output tokens of the fake upstream's model ``fake-a``.
PRICE_IN, PRICE_OUT = 1000, 2000
#: What the revocation docs promise without Redis (the marker poll), with slack for a loaded machine.
REVOCATION_BOUND_S = 0.5 + 4.5


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, up: FakeUpstream) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("procs")
    cfg = tmp / "gateway.yaml"
    cfg.write_text(f"""
router: {{retries: 0, timeout: 30}}
models:
  - name: fake
    deployments:
      - {{provider: openai, model: fake-a, api_base: "{up.base_url}"}}
  - name: judge
    deployments:
      - {{provider: openai, model: judge-a, api_base: "{up.base_url}", timeout: 8}}
""")
    _redis_ok()
    with fresh_pg_schema() as db_url:
        c = Cluster(tmp, db_url=db_url, redis_url=REDIS_URL, gateway_config=cfg,
                    env={"PODIUM_ONLINE_EVAL_LEASE_S": str(LEASE_S), "PODIUM_ONLINE_EVAL_BATCH": "50"})
        try:
            for kind in ("server", "server", "gateway", "gateway", "worker", "worker"):
                c.start(kind)  # all at once, on an empty schema
            c.wait_ready(timeout=180)
            yield c
        finally:
            c.stop()


def _redis_ok() -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        r.ping()
    except Exception as exc:  # environment problem: say how to fix it
        raise RuntimeError(f"Redis is not reachable at {REDIS_URL} ({exc}); start it or set PODIUM_TEST_REDIS_URL")
    finally:
        r.close()


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> httpx.BasicAuth:
    """The default project's admin key, from the keys file of the server that created it."""
    from podium.config import read_keys_file

    files = [read_keys_file(cluster.tmp / p.name / "default-keys.env") for p in cluster.of("server")]
    made = [f for f in files if f.get("PODIUM_SECRET_KEY")]
    assert len(made) == 1, f"exactly one server creates the default project, got {len(made)}"
    auth = httpx.BasicAuth(made[0]["PODIUM_PUBLIC_KEY"], made[0]["PODIUM_SECRET_KEY"])
    # Prices before any gateway call, so no gateway holds the project's price table without them
    # (prices are cached per process for a few seconds). fake-a: $1,000 / $2,000 per 1M tokens.
    r = httpx.put(cluster.of("server")[0].url + "/api/v1/prices/fake-a", auth=auth, timeout=30,
                  json={"input_per_million": PRICE_IN, "output_per_million": PRICE_OUT})
    assert r.status_code == 200, r.text
    return auth


def _store(cluster: Cluster) -> Any:
    from podium.store import Store

    return Store.from_url(cluster.db_url, migrate=False)


def _new_key(srv: Proc, admin: httpx.BasicAuth, role: str = "member") -> tuple[str, str]:
    r = httpx.post(srv.url + "/api/v1/keys", json={"role": role}, auth=admin, timeout=30)
    assert r.status_code in (200, 201), r.text
    body = r.json()
    return body["public_key"], body["secret_key"]


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


# --- startup ---------------------------------------------------------------------------------------------


def test_processes_started_together_on_an_empty_schema(cluster: Cluster, admin: httpx.BasicAuth) -> None:
    """Two servers, two gateways and two workers migrated one schema and bootstrapped it at the same
    time: one default project, every process healthy and on PostgreSQL."""
    store = _store(cluster)
    try:
        assert [p.name for p in store.projects.list_projects()] == ["default"]
    finally:
        store.close()
    for p in cluster.of("server") + cluster.of("gateway"):
        h = httpx.get(p.url + "/api/v1/health", timeout=10).json()
        assert h["status"] == "ok" and h["database"] == "postgresql", (p.name, h)
    assert [len(cluster.of(k)) for k in ("server", "gateway", "worker")] == [2, 2, 2]


def test_concurrent_migrations_of_one_empty_schema_all_succeed() -> None:
    """The advisory lock in ``podium.store.migrate.upgrade``: three upgrades at once (threads here,
    processes above) all return, and the schema is at head once."""
    from sqlalchemy import text

    from podium.store.engine import make_engine
    from podium.store.migrate import current_revision, upgrade

    with fresh_pg_schema() as url:
        engines = [make_engine(url) for _ in range(3)]
        try:
            with ThreadPoolExecutor(3) as ex:
                list(ex.map(upgrade, engines))  # without the lock: "relation alembic_version already exists"
            revs = {current_revision(e) for e in engines}
            assert len(revs) == 1 and None not in revs
            with engines[0].connect() as c:
                assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        finally:
            for e in engines:
                e.dispose()


# --- (a) spans round-robin: acknowledged = stored, once --------------------------------------------------


def test_spans_round_robin_to_two_servers_are_stored_exactly_once(cluster: Cluster, admin: httpx.BasicAuth) -> None:
    servers = cluster.of("server")
    batches, per_batch = 40, 100
    run = uuid.uuid4().hex[:8]
    t0 = datetime.now(UTC)

    def batch(i: int) -> dict[str, Any]:
        items = []
        for j in range(per_batch):
            n = i * per_batch + j
            items.append({"type": "span", "body": {
                "id": f"{run}-s{n}", "trace_id": f"{run}-t{n // 10}", "name": "step", "kind": "span",
                "start_time": _iso(t0), "end_time": _iso(t0 + timedelta(milliseconds=5)),
                "input": {"n": n}, "output": "x" * 200}})
        return {"batch": items}

    acked: dict[str, int] = {s.name: 0 for s in servers}
    lock = threading.Lock()

    def send(i: int) -> None:
        srv = servers[i % len(servers)]  # round-robin, as a load balancer would
        r = httpx.post(srv.url + "/api/v1/ingest", json=batch(i), auth=admin, timeout=60)
        assert r.status_code == 200 and not r.json()["errors"], r.text
        with lock:
            acked[srv.name] += per_batch

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(send, range(batches)))
    total = batches * per_batch
    assert sum(acked.values()) == total and all(v == total // 2 for v in acked.values()), acked

    from sqlalchemy import text

    store = _store(cluster)
    try:
        deadline = time.monotonic() + 30
        while True:
            with store.engine.connect() as c:
                n, distinct = c.execute(text("SELECT count(*), count(DISTINCT id) FROM span WHERE id LIKE :p"),
                                        {"p": f"{run}-%"}).one()
            if n >= total or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (n, distinct) == (total, total), f"stored {n} spans ({distinct} distinct) of {total} acknowledged"
        with store.engine.connect() as c:
            traces = c.execute(text("SELECT count(*) FROM trace WHERE id LIKE :p"), {"p": f"{run}-%"}).scalar_one()
        assert traces == total // 10
    finally:
        store.close()
    for s in servers:  # each server wrote what it acknowledged, nothing was dropped or rejected
        ingest = httpx.get(s.url + "/api/v1/health", timeout=10).json()["ingest"]
        assert ingest["write_errors"] == 0 and ingest["rejected_busy"] == 0, (s.name, ingest)


# --- (b) budgets and rate limits across two gateways ------------------------------------------------------


def _burst(gateways: list[Proc], secret: str, n: int, body: dict[str, Any]) -> dict[int, int]:
    """``n`` concurrent chat calls, round-robin over the gateways: {status: count}."""
    def one(i: int) -> int:
        g = gateways[i % len(gateways)]
        r = httpx.post(g.url + "/v1/chat/completions", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code in (200, 429), (g.name, r.status_code, r.text)
        if r.status_code == 429:
            assert r.json()["error"]["type"] == "rate_limit_error" and r.headers.get("retry-after"), r.text
        return r.status_code

    with ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(one, range(n)))
    return {c: codes.count(c) for c in sorted(set(codes))}


def test_budget_and_rate_limit_are_exact_across_two_gateways(cluster: Cluster, admin: httpx.BasicAuth,
                                                             up: FakeUpstream) -> None:
    srv, gateways = cluster.of("server")[0], cluster.of("gateway")
    assert len(gateways) == 2
    # Every answer costs exactly the gateway's estimate: prompt tokens = characters / 4 + 8 of the
    # messages ("user" + 32 characters: 17), completion tokens = max_tokens.
    max_tokens, prompt_tokens = 20, 17
    msg = [{"role": "user", "content": "q" * 32}]
    up.respond("fake-a", lambda body: Reply(" ".join(["tok"] * max_tokens), prompt_tokens=prompt_tokens))
    upstream_before = len(up.bodies("fake-a"))
    est = (prompt_tokens * PRICE_IN + max_tokens * PRICE_OUT) / 1e6  # USD per request (prices: the admin fixture)
    allowed = 10

    # budget: 10.5 requests' worth -> exactly 10 calls go through, whichever gateway they hit
    pk_b, sk_b = _new_key(srv, admin, role="gateway")
    r = httpx.put(srv.url + f"/api/v1/gateway/keys/{pk_b}", auth=admin, timeout=30,
                  json={"limits": {"budget_total": round(est * (allowed + 0.5), 9)}})
    assert r.status_code == 200, r.text
    got = _burst(gateways, sk_b, 3 * allowed, {"model": "fake", "messages": msg, "max_tokens": max_tokens})
    assert got == {200: allowed, 429: 2 * allowed}, got

    # rate limit: rpm 15 -> exactly 15 of 40 calls go through
    pk_r, sk_r = _new_key(srv, admin, role="gateway")
    r = httpx.put(srv.url + f"/api/v1/gateway/keys/{pk_r}", auth=admin, timeout=30, json={"limits": {"rpm": 15}})
    assert r.status_code == 200, r.text
    got = _burst(gateways, sk_r, 40, {"model": "fake", "messages": msg, "max_tokens": max_tokens})
    assert got == {200: 15, 429: 25}, got

    # the shared counters (read by a server, from Redis) agree: spend is exactly 10 requests, nothing in flight
    spend = httpx.get(srv.url + "/api/v1/gateway/spend", auth=admin, timeout=30).json()
    usage = {k["public_key"]: k["usage"] for k in spend["keys"]}
    assert usage[pk_b]["spend"]["total"]["usd"] == pytest.approx(allowed * est, rel=1e-6)
    assert usage[pk_b]["in_flight"] == 0 and usage[pk_b]["reserved_usd"] == pytest.approx(0, abs=1e-12)
    assert len(up.bodies("fake-a")) - upstream_before == allowed + 15  # refused calls never reached the upstream


# --- (c) label moves and key revocations are seen by every process ----------------------------------------


def test_label_move_and_key_revocation_are_seen_by_every_process(cluster: Cluster, admin: httpx.BasicAuth) -> None:
    a, b = cluster.of("server")
    name = f"scale-{uuid.uuid4().hex[:6]}"
    for text_ in ("v1: {{q}}", "v2: {{q}}"):
        r = httpx.post(a.url + "/api/v1/prompts", auth=admin, timeout=30,
                       json={"name": name, "prompt": text_, "labels": ["production"]})
        assert r.status_code == 201, r.text

    def label_on(srv: Proc) -> int:
        r = httpx.get(srv.url + f"/api/v1/prompts/{name}/labels/production", auth=admin, timeout=30)
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    assert label_on(a) == label_on(b) == 2
    r = httpx.put(a.url + f"/api/v1/prompts/{name}/labels/production", auth=admin, timeout=30, json={"version": 1})
    assert r.status_code == 200, r.text
    assert label_on(b) == 1  # servers keep no label cache: the next read anywhere sees the move

    # a key in use on all four processes (their key caches hold it), revoked on server a
    pk, sk = _new_key(a, admin, role="member")
    bearer = {"Authorization": f"Bearer {sk}"}
    procs = cluster.of("server") + cluster.of("gateway")

    def status(p: Proc) -> int:
        if p.kind == "gateway":
            r = httpx.post(p.url + "/v1/chat/completions", headers=bearer, timeout=30,
                           json={"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        else:
            r = httpx.get(p.url + "/api/v1/project", headers=bearer, timeout=30)
        return r.status_code

    assert [status(p) for p in procs] == [200] * 4
    r = httpx.delete(a.url + f"/api/v1/keys/{pk}", auth=admin, timeout=30)
    assert r.status_code == 200, r.text
    revoked_at = time.monotonic()
    seen: dict[str, float] = {}

    def watch(p: Proc) -> None:  # one prober per process; a probe's own latency counts in its time
        while time.monotonic() - revoked_at < REVOCATION_BOUND_S + 5:
            if status(p) == 401:
                seen[p.name] = time.monotonic() - revoked_at
                return
            time.sleep(0.02)

    with ThreadPoolExecutor(len(procs)) as ex:
        list(ex.map(watch, procs))
    print("revocation seen after (s):", {k: round(v, 3) for k, v in seen.items()})
    assert set(seen) == {p.name for p in procs}, f"still accepted by {[p.name for p in procs if p.name not in seen]}"
    assert max(seen.values()) <= REVOCATION_BOUND_S, seen


# --- (d) a worker killed mid-job -------------------------------------------------------------------------


def test_killed_worker_jobs_go_to_the_other_worker(cluster: Cluster, admin: httpx.BasicAuth,
                                                   up: FakeUpstream) -> None:
    from sqlalchemy import text

    srv = cluster.of("server")[0]
    hang = threading.Event()
    hang.set()
    verdict = '{"reasoning": "polite", "score": 4}'
    up.respond("judge-a", lambda body: Hang() if hang.is_set() else Reply(verdict, prompt_tokens=50))
    rule = httpx.post(srv.url + "/api/v1/evaluation-rules", auth=admin, timeout=30, json={
        "name": f"judged-{uuid.uuid4().hex[:6]}", "delay_s": 0,
        "filter": {"name": "kill-test"},
        "scorers": [{"type": "llm-rubric", "params": {"value": "answers politely"}, "model": "judge"}]})
    assert rule.status_code == 201, rule.text
    rule_id = rule.json()["id"]

    workers = cluster.of("worker")
    assert len(workers) == 2
    run, n = uuid.uuid4().hex[:8], 6
    now = datetime.now(UTC)
    batch = [{"type": "span", "body": {
        "id": f"{run}-{i}", "trace_id": f"{run}-t{i}", "name": "kill-test", "start_time": _iso(now),
        "end_time": _iso(now + timedelta(milliseconds=10)), "input": {"question": "q"}, "output": "Sure."}}
        for i in range(n)]
    r = httpx.post(srv.url + "/api/v1/ingest", json={"batch": batch}, auth=admin, timeout=30)
    assert r.status_code == 200 and not r.json()["errors"], r.text

    store = _store(cluster)
    try:
        def leases() -> dict[int, int]:
            """{worker pid: online-eval jobs it holds}; worker ids are host:pid:random."""
            with store.engine.connect() as c:
                rows = c.execute(text("SELECT leased_by, count(*) FROM monitor_job WHERE kind = 'online_eval' "
                                      "AND status = 'leased' GROUP BY leased_by")).all()
            return {int(str(who).split(":")[-2]): int(k) for who, k in rows}

        deadline = time.monotonic() + 40
        while not (sum(leases().values()) == n and up.bodies("judge-a")):  # claimed, and a judge call is out
            assert all(w.alive() for w in workers), [tail(w.log) for w in workers]
            assert time.monotonic() < deadline, f"no worker claimed the jobs\n{tail(workers[0].log)}"
            time.sleep(0.1)
        held = leases()
        # the victim holds the batch (one claim of up to PODIUM_ONLINE_EVAL_BATCH takes all six)
        victim = max(workers, key=lambda w: held.get(w.pid, 0))
        survivor = next(w for w in workers if w is not victim)
        time.sleep(2.0)  # two of the survivor's polls: while the lease holds it takes nothing
        assert leases() == held
        victim.kill()  # SIGKILL mid-job: no ack, no nack, no lease extension any more
        hung = len(up.bodies("judge-a"))
        hang.clear()

        def scores() -> list[tuple[str, int]]:
            with store.engine.connect() as c:
                rows = c.execute(text("SELECT trace_id, count(*) FROM score WHERE trace_id LIKE :p AND source = "
                                      "'online' GROUP BY trace_id"), {"p": f"{run}-%"}).all()
            return [(t, int(k)) for t, k in rows]

        def left() -> int:
            with store.engine.connect() as c:
                return int(c.execute(text("SELECT count(*) FROM monitor_job WHERE kind = 'online_eval'")).scalar_one())

        deadline = time.monotonic() + LEASE_S + 40
        while len(scores()) < n or left():  # scores are written, then the batch is acked
            assert survivor.alive(), tail(survivor.log)
            assert time.monotonic() < deadline, f"the jobs were not taken over ({left()} left)\n{tail(survivor.log)}"
            time.sleep(0.2)
        assert sorted(scores()) == sorted((f"{run}-t{i}", 1) for i in range(n))  # each trace scored once
        judged_after = len(up.bodies("judge-a")) - hung
        assert judged_after == n, f"the survivor judged {judged_after} calls for {n} traces"
        st = httpx.get(srv.url + f"/api/v1/evaluation-rules/{rule_id}/stats", auth=admin, timeout=30).json()
        print("rule stats:", st)
    finally:
        store.close()

"""Data generator for the query benchmark: ~100k traces of ~10 spans (10^6 spans) over 30
days, with users, sessions, tags, models, costs, errors and scores, plus one trace of
100,000 spans; written through the store's own write path
(``Store.ingest.write(IngestBatch(...))``, 5,000 spans per transaction).

Results are cached under ``bench/out/datagen-v<VERSION>-<params hash>/``: the SQLite file
itself, and for PostgreSQL a binary COPY dump of every table that is restored into a fresh
schema (much faster than generating again). Bump ``GEN_VERSION`` when the data changes.

    .venv/bin/python bench/datagen.py --db all          # build the caches (both databases)
    .venv/bin/python bench/datagen.py --quick --db sqlite
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import OUT, create_schema, drop_schema
from _workload import MODELS, RARE_TAG, ROUTES, TAGS, SpanSpec, TraceSpec, make_trace, sentence

GEN_VERSION = 1
CHUNK_SPANS = 5000
T_END = datetime(2026, 11, 1, tzinfo=UTC)  # fixed, so the data (and the cache) are deterministic
RARE_ROUTE = "legal-escalation"  # ~0.1% of traces: a rare `q` / name
PG_TABLES = ["project", "api_key", "model_price", "trace", "trace_tag", "span", "score"]


@dataclass(frozen=True)
class Params:
    n_traces: int = 100_000
    min_spans: int = 5
    max_spans: int = 15
    big_trace_spans: int = 100_000
    days: int = 30
    n_users: int = 2_000
    seed: int = 20261123

    @property
    def key(self) -> str:
        """Cache key: generator version, parameters and the schema (the migration files), so
        a schema change never reuses data built for another schema."""
        raw = json.dumps(asdict(self), sort_keys=True).encode() + schema_fingerprint().encode()
        return f"datagen-v{GEN_VERSION}-{hashlib.sha256(raw).hexdigest()[:8]}"


def schema_fingerprint() -> str:
    import podium.store

    versions = Path(podium.store.__file__).parent / "migrations" / "versions"
    h = hashlib.sha256()
    for f in sorted(versions.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


FULL = Params()
QUICK = Params(n_traces=10_000, big_trace_spans=10_000)


def cache_dir(p: Params) -> Path:
    return OUT / p.key


# --- rows ------------------------------------------------------------------------------------


def _money(x: float) -> Decimal | None:
    return Decimal(f"{x:.10f}") if x else None


def span_row(pid: str, trace_id: str, s: SpanSpec, t0: datetime) -> dict[str, Any]:
    start = t0 + timedelta(milliseconds=s.start_ms)
    end = start + timedelta(milliseconds=s.dur_ms)
    it, ot = s.input_tokens, s.output_tokens
    cin = (it or 0) * s.price_in / 1e6
    cout = (ot or 0) * s.price_out / 1e6
    return {
        "project_id": pid, "trace_id": trace_id, "id": s.id, "parent_id": s.parent_id, "name": s.name,
        "kind": s.kind, "start_time": start, "end_time": end, "latency_ms": s.dur_ms, "status": s.status,
        "status_message": s.status_message, "model": s.model, "provider": s.provider,
        "model_parameters": s.model_parameters, "input": s.input, "output": s.output, "metadata": s.metadata,
        "attributes": None, "input_tokens": it, "output_tokens": ot,
        "total_tokens": (it or 0) + (ot or 0) if it is not None else None, "usage_details": None,
        "usage_estimated": None, "cost_input": _money(cin) if it is not None else None,
        "cost_output": _money(cout) if it is not None else None,
        "cost_total": _money(cin + cout) if it is not None else None,
        "completion_start_time": start + timedelta(milliseconds=s.ttft_ms) if s.ttft_ms is not None else None,
        "prompt_name": None, "prompt_version": None, "updated_at": None,
    }


@dataclass
class Chunk:
    spans: list[dict[str, Any]]
    traces: list[dict[str, Any]]
    tags: list[tuple[str, str, str]]
    scores: list[dict[str, Any]]
    big: bool = False


class Generator:
    def __init__(self, p: Params, project_id: str) -> None:
        self.p = p
        self.pid = project_id
        self.rng = random.Random(p.seed)
        self.t_start = T_END - timedelta(days=p.days)
        # Zipf-like activity: a few heavy users, a long tail; 10% of traces are anonymous.
        self.users = [f"user-{i:05d}" for i in range(p.n_users)]
        self.user_w = [1.0 / (i + 1) ** 0.8 for i in range(p.n_users)]
        self.stats: Counter[str] = Counter()
        self.per_user: Counter[str] = Counter()
        self.per_session: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.big_trace_id = ""
        self.big_root_id = ""

    def _trace_id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def traces(self) -> Iterator[Chunk]:
        p, rng = self.p, self.rng
        span = self.t_start.timestamp()
        starts = sorted(rng.uniform(0, p.days * 86400.0) for _ in range(p.n_traces))
        ch = Chunk([], [], [], [])
        for k, off in enumerate(starts):
            t0 = datetime.fromtimestamp(span + off, UTC)
            route = RARE_ROUTE if rng.random() < 0.001 else rng.choice(ROUTES)
            tr = make_trace(rng, rng.randint(p.min_spans, p.max_spans), salt=k, route=route)
            user = rng.choices(self.users, weights=self.user_w)[0] if rng.random() < 0.9 else None
            tr.user_id = user
            tr.session_id = f"{user}-{t0:%m%d}-{rng.randint(0, 2)}" if user else None
            tr.tags = sorted(set(rng.choices(TAGS[:6], k=rng.randint(0, 2)) + rng.sample(TAGS, rng.randint(0, 1))))
            if rng.random() < 0.001:
                tr.tags.append(RARE_TAG)
            tr.environment = "production" if rng.random() < 0.9 else "staging"
            tr.release = f"v1.{rng.randint(0, 9)}.{rng.randint(0, 5)}"
            tr.metadata = {"plan": rng.choice(["free", "pro", "enterprise"]), "region": rng.choice(["eu", "us"])}
            self._add(ch, tr, self._trace_id(), t0, score=rng.random() < 0.05)
            if len(ch.spans) >= CHUNK_SPANS:
                yield ch
                ch = Chunk([], [], [], [])
        if ch.spans:
            yield ch

    def _add(self, ch: Chunk, tr: TraceSpec, trace_id: str, t0: datetime, *, score: bool) -> None:
        ch.spans += [span_row(self.pid, trace_id, s, t0) for s in tr.spans]
        ch.traces.append({
            "project_id": self.pid, "id": trace_id, "user_id": tr.user_id, "session_id": tr.session_id,
            "release": tr.release, "environment": tr.environment, "metadata": tr.metadata, "name": None,
        })
        ch.tags += [(self.pid, trace_id, t) for t in tr.tags]
        if score:
            ch.scores.append({
                "project_id": self.pid, "id": f"sc-{trace_id}", "trace_id": trace_id, "span_id": None,
                "session_id": None, "name": "helpfulness", "data_type": "numeric",
                "value": round(self.rng.random(), 2), "string_value": None, "source": "eval",
                "comment": None, "metadata": None, "timestamp": t0 + timedelta(minutes=1),
            })
        self.stats["traces"] += 1
        self.stats["spans"] += len(tr.spans)
        self.stats["error_traces"] += tr.has_error
        for t in tr.tags:
            self.stats[f"tag:{t}"] += 1
        for m in {s.model for s in tr.spans if s.model}:
            self.stats[f"model:{m}"] += 1
        self.stats[f"route:{tr.name}"] += 1
        if tr.user_id:
            self.per_user[tr.user_id] += 1
        if tr.session_id:
            self.per_session[tr.session_id] += 1
        self.latencies.append(tr.spans[0].dur_ms)

    def big_trace(self) -> Iterator[Chunk]:
        """One agent run of exactly ``big_trace_spans`` spans: root -> steps -> children."""
        n = self.p.big_trace_spans
        rng = random.Random(self.p.seed + 1)
        trace_id = self._trace_id()
        self.big_trace_id = trace_id
        t0 = T_END - timedelta(days=2)
        n_steps = max(1, min(1000, (n - 1) // 100))
        rest = n - 1 - n_steps
        per = [rest // n_steps + (1 if i < rest % n_steps else 0) for i in range(n_steps)]
        root = SpanSpec("root-" + trace_id[:12], None, "research-agent", "agent", 0.0, 0.0,
                        input={"task": sentence(rng)}, output=sentence(rng, 20, 40))
        self.big_root_id = root.id
        specs: list[SpanSpec] = [root]
        cursor = 5.0
        m = MODELS[0]
        for i in range(n_steps):
            step = SpanSpec(f"step-{i:05d}", root.id, f"iteration-{i}", "agent", cursor, 0.0)
            specs.append(step)
            start = cursor
            for j in range(per[i]):
                kind = ("generation", "tool", "retrieval", "span")[j % 4]
                dur = rng.uniform(5, 120)
                s = SpanSpec(f"s-{i:05d}-{j:04d}", step.id, f"{kind}-{j}", kind, cursor, dur,
                             input={"q": sentence(rng, 3, 8)}, output={"ok": True})
                if kind == "generation":
                    s.model, s.provider, s.price_in, s.price_out = m[0], m[1], m[2], m[3]
                    s.input_tokens, s.output_tokens = rng.randint(100, 2000), rng.randint(10, 300)
                specs.append(s)
                cursor += dur
            step.dur_ms = cursor - start
        root.dur_ms = cursor + 5
        ch = Chunk([], [], [], [], big=True)
        for k, s in enumerate(specs):
            ch.spans.append(span_row(self.pid, trace_id, s, t0))
            if k == 0:
                ch.traces.append({"project_id": self.pid, "id": trace_id, "user_id": "user-00000",
                                  "session_id": "big-run", "release": "v1.8.2", "environment": "production",
                                  "metadata": {"kind": "big-agent-run"}, "name": None})
                ch.tags.append((self.pid, trace_id, "big-trace"))
                ch.scores.append({
                    "project_id": self.pid, "id": f"sc-{trace_id}", "trace_id": trace_id, "span_id": None,
                    "session_id": None, "name": "helpfulness", "data_type": "numeric", "value": 0.5,
                    "string_value": None, "source": "eval", "comment": None, "metadata": None,
                    "timestamp": t0,
                })
            if len(ch.spans) >= CHUNK_SPANS:
                yield ch
                ch = Chunk([], [], [], [], big=True)
        if ch.spans:
            yield ch


# --- meta: what the query benchmark needs to know --------------------------------------------


def _meta(g: Generator, project_id: str, public: str, secret: str, timings: dict[str, Any]) -> dict[str, Any]:
    typical_users = [u for u, c in g.per_user.most_common() if 20 <= c <= 80][:10] or [g.users[0]]
    sessions = [s for s, c in g.per_session.most_common() if c >= 3][:10] or list(g.per_session)[:10]
    lat = sorted(g.latencies)
    mid = g.t_start + timedelta(days=g.p.days / 2)
    return {
        "version": GEN_VERSION,
        "params": asdict(g.p),
        "project_id": project_id,
        "public_key": public,
        "secret_key": secret,
        "t_start": g.t_start.isoformat(),
        "t_end": T_END.isoformat(),
        "range_from": mid.isoformat(),
        "range_to": (mid + timedelta(days=1)).isoformat(),
        "typical_users": typical_users,
        "user_trace_counts": [g.per_user[u] for u in typical_users],
        "sessions": sessions,
        "common_tag": "prod",
        "rare_tag": RARE_TAG,
        "common_model": MODELS[0][0],
        "rare_model": MODELS[-1][0],
        "q_common": "agent",
        "q_rare": "escalat",
        "latency_p95_ms": lat[int(0.95 * (len(lat) - 1))] if lat else 0.0,
        "big_trace_id": g.big_trace_id,
        "big_root_id": g.big_root_id,
        "stats": dict(g.stats),
        "timings": timings,
    }


def generate(url: str, p: Params, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate into the (empty, migrated-on-open) store at ``url``; returns the meta."""
    from sqlalchemy import text

    from podium.store import Store
    from podium.store.engine import make_engine
    from podium.store.migrate import upgrade
    from podium.store.repos.ingest import IngestBatch

    engine = make_engine(url)  # exactly as the server makes it
    upgrade(engine)
    store = Store(engine)
    try:
        proj = store.projects.create_project("bench")
        key = store.projects.create_key(proj.id, role="admin", note="bench/datagen.py")
        g = Generator(p, proj.id)
        timings: dict[str, Any] = {"chunks": 0, "write_s": 0.0, "big_chunks_ms": []}
        t_all = time.perf_counter()
        last_log = t_all
        for ch in itertools.chain(g.traces(), g.big_trace()):
            t0 = time.perf_counter()
            store.ingest.write(IngestBatch(spans=ch.spans, traces=ch.traces, tags=ch.tags, scores=ch.scores))
            dt = time.perf_counter() - t0
            timings["chunks"] += 1
            timings["write_s"] += dt
            if ch.big:
                timings["big_chunks_ms"].append(round(dt * 1000, 1))
            if time.perf_counter() - last_log > 10:
                last_log = time.perf_counter()
                log(f"  {g.stats['spans']:,} spans written, {timings['write_s']:.0f} s in write()")
        timings["total_s"] = time.perf_counter() - t_all
        total_spans = g.stats["spans"] + p.big_trace_spans
        timings["spans_per_s_write_path"] = total_spans / timings["write_s"]
        t0 = time.perf_counter()
        with store.engine.begin() as c:
            c.execute(text("ANALYZE"))
        timings["analyze_s"] = time.perf_counter() - t0
        return _meta(g, proj.id, key.key.public_key, key.secret_key, timings)
    finally:
        store.close()


# --- SQLite cache ----------------------------------------------------------------------------


def ensure_sqlite(p: Params, force: bool = False, log: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:
    d = cache_dir(p)
    db, meta_path = d / "sqlite.db", d / "sqlite-meta.json"
    if db.exists() and meta_path.exists() and not force:
        return db, json.loads(meta_path.read_text())
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "sqlite.db.tmp"
    for f in d.glob("sqlite.db*"):
        f.unlink()
    log(f"generating SQLite data into {tmp} ({p.n_traces:,} traces + a {p.big_trace_spans:,}-span trace) ...")
    meta = generate(f"sqlite:///{tmp}", p, log)
    import sqlite3

    con = sqlite3.connect(tmp)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    tmp.rename(db)
    meta_path.write_text(json.dumps(meta, indent=1, default=str))
    log(f"SQLite: {meta['timings']['spans_per_s_write_path']:,.0f} spans/s through the write path; "
        f"{db.stat().st_size / 2**20:,.0f} MiB")
    return db, meta


# --- PostgreSQL cache (binary COPY of every table) -------------------------------------------


def _raw(url: str) -> Any:
    from podium.store.engine import make_engine

    eng = make_engine(url)
    return eng, eng.raw_connection()


def _columns(cur: Any, table: str) -> list[str]:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [r[0] for r in cur.fetchall()]


def dump_pg(url: str, d: Path) -> None:
    """Binary COPY of every table, with its column list (so a later schema with added
    columns can still take the data)."""
    eng, raw = _raw(url)
    columns: dict[str, list[str]] = {}
    try:
        cur = raw.cursor()
        for table in PG_TABLES:
            columns[table] = cols = _columns(cur, table)
            collist = ", ".join(f'"{c}"' for c in cols)
            with gzip.open(d / f"{table}.copy.gz.tmp", "wb", compresslevel=1) as fh, cur.copy(
                f'COPY "{table}" ({collist}) TO STDOUT (FORMAT BINARY)'
            ) as cp:
                for data in cp:
                    fh.write(data)
            (d / f"{table}.copy.gz.tmp").rename(d / f"{table}.copy.gz")
    finally:
        raw.close()
        eng.dispose()
    (d / "columns.json").write_text(json.dumps(columns))


def restore_pg(url: str, d: Path) -> None:
    """Migrate the (empty) schema to head, then COPY the cached rows back in."""
    from sqlalchemy import text

    from podium.store.engine import make_engine
    from podium.store.migrate import upgrade

    eng = make_engine(url)
    upgrade(eng)
    columns: dict[str, list[str]] = json.loads((d / "columns.json").read_text())
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        for table in PG_TABLES:
            collist = ", ".join(f'"{c}"' for c in columns[table])
            with gzip.open(d / f"{table}.copy.gz", "rb") as fh, cur.copy(
                f'COPY "{table}" ({collist}) FROM STDIN (FORMAT BINARY)'
            ) as cp:
                while data := fh.read(1 << 20):
                    cp.write(data)
        raw.commit()
    finally:
        raw.close()
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
    eng.dispose()


def _empty_schema(url: str) -> None:
    """Drop every table in the schema behind ``url`` (after a failed restore)."""
    from sqlalchemy import text

    from podium.store.engine import make_engine

    eng = make_engine(url)
    try:
        with eng.begin() as c:
            names = c.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars()
            for n in list(names):
                c.execute(text(f'DROP TABLE IF EXISTS "{n}" CASCADE'))
    finally:
        eng.dispose()


def ensure_pg(p: Params, url: str, force: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fill the (empty) schema behind ``url``: restore the cached dump, or generate + dump."""
    d = cache_dir(p) / "pg"
    meta_path = d / "meta.json"
    cached = [d / "columns.json", *(d / f"{t}.copy.gz" for t in PG_TABLES)]
    if meta_path.exists() and not force and all(f.exists() for f in cached):
        t0 = time.perf_counter()
        try:
            restore_pg(url, d)
            log(f"PostgreSQL: restored cached data in {time.perf_counter() - t0:.0f} s")
            return json.loads(meta_path.read_text())  # type: ignore[no-any-return]
        except Exception as e:  # e.g. the schema changed incompatibly: generate again
            log(f"PostgreSQL: could not restore the cache ({type(e).__name__}: {e}); generating again")
            _empty_schema(url)
    d.mkdir(parents=True, exist_ok=True)
    log(f"generating PostgreSQL data ({p.n_traces:,} traces + a {p.big_trace_spans:,}-span trace) ...")
    meta = generate(url, p, log)
    from sqlalchemy import text

    from podium.store.engine import make_engine

    eng = make_engine(url)
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
    eng.dispose()
    dump_pg(url, d)
    meta_path.write_text(json.dumps(meta, indent=1, default=str))
    log(f"PostgreSQL: {meta['timings']['spans_per_s_write_path']:,.0f} spans/s through the write path")
    return meta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{QUICK.n_traces:,} traces + {QUICK.big_trace_spans:,}")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "all"], default="all")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args()
    p = QUICK if args.quick else FULL
    if args.db in ("sqlite", "all"):
        db, meta = ensure_sqlite(p, args.force)
        print(f"SQLite cache: {db} ({meta['stats']['spans'] + p.big_trace_spans:,} spans)")
    if args.db in ("postgresql", "all"):
        schema, url = create_schema("bench_datagen")
        try:
            meta = ensure_pg(p, url, args.force)
            print(f"PostgreSQL cache: {cache_dir(p) / 'pg'}")
        finally:
            drop_schema(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())

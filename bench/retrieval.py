"""Retrieval latency at 10^5 chunks and ingestion throughput (knowledge collections, docs/rag.md).

On SQLite and PostgreSQL: a collection of synthetic documents (10,000 x ~10 chunks of ~100
tokens = ~10^5 chunks), then 200 queries per mode (vector on the flat index, keyword, hybrid;
pgvector's HNSW too when the extension is installed) through ``CollectionService.search``, the
path the REST API runs. Ingestion is measured end to end (parse, chunk, MiniLM embeddings, store)
on a sample of 100 documents; the 10^5-chunk corpus is embedded with a hashing embedder (same
384 dimensions, ~100x faster) so the run stays near 10 minutes; query embedding with MiniLM is
reported on its own line.

    .venv/bin/python bench/retrieval.py            # writes docs/benchmarks.md
    .venv/bin/python bench/retrieval.py --quick    # 10^4 chunks, prints only
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    command_line,
    create_schema,
    drop_schema,
    fmt_int,
    header_block,
    machine_facts,
    md_table,
    percentile,
    write_section,
)

SECTION = "Retrieval (knowledge collections)"
NOTES = """\
Notes (written by hand; re-check when retrieval changes):

- *vector* is the in-process index (podium/rag/index.py): the collection's float32 vectors are read
  from the database once per version into one matrix; at 10^5 chunks the first search also builds the
  inverted-file index (k-means, ~316 lists; both in the *index load* column), and each query then scans
  the nearest tenth of the lists. *recall@5* compares its top 5 with an exact scan of every row (the
  *vector (exact)* row, what a filtered search does).
- *keyword* is SQLite FTS5 `bm25()` / PostgreSQL `ts_rank` over a GIN index, the query's words
  OR-ed, English function words dropped (`STOPWORDS` in podium/store/repos/collections.py). Synthetic
  text: 200 topics, each a Zipf-like slice of a 5,000-word vocabulary, with a third of the words
  English function words; queries are drawn the same way. A query's most frequent topic words still
  match a few thousand chunks, which the full-text index must rank.
- *hybrid* runs both with 4 x top_k candidates each and fuses them (RRF, k = 60); latency is their sum
  plus fetching the chunks.
- Latencies exclude the query's embedding (MiniLM, one short query: the *query embed* line) and HTTP.
- A 2-core machine shared with other work (see the load average): figures vary by up to 2x between runs.
  The query thread's CPU time (*CPU p50*) is what a search costs on a free core; when it is far below
  the wall-clock p50 the run waited for cores. (It leaves out BLAS helper threads, which numpy may use
  for the exact scan.) An earlier run at load average 11-16 measured vector p95 124 ms and hybrid p95
  171 ms on SQLite with the same CPU p50 (6 ms, 20 ms): the targets hold on free cores only.
- Before/after the PostgreSQL changes below, whole bench: the run of 2026-12-07 01:24 (load average
  1.1-2.2, before them) measured PostgreSQL keyword p50 169.6 / p95 213.4 ms and hybrid 211.9 /
  245.9 ms (vector 13.2 / 20.6 ms; SQLite keyword 18.9 / 20.5, hybrid 16.3 / 22.9, vector 4.5 / 5.3).
  The run of 03:39 (after; load average 13-21, other work on both cores) measured keyword 23.8 /
  34.2 ms and hybrid 35.9 / 113.9 ms on PostgreSQL, while the unchanged SQLite path slowed 5-6x under
  that load (keyword 18.9 -> 106 ms p50): on a quiet machine PostgreSQL keyword and hybrid are
  expected well inside the 40 ms target, but that was not measured in a quiet run.
- PostgreSQL keyword search, before/after (server execution time of the 100 queries from
  `EXPLAIN ANALYZE`, 99,200 chunks; load average 4-14, so read the ratios): the run of 2026-12-07
  01:24 had keyword p95 213 ms, hybrid 246 ms. (1) The planner had no statistics for the freshly
  filled table, took `project_id = ? AND collection = ? AND valid_to IS NULL` for one row and read
  the whole collection through that b-tree index, testing `fts @@ query` on all 10^5 rows:
  `ANALYZE` after a write of >= 1,000 chunks (`ANALYZE_MIN`) moves it to the GIN index: p50 100 ->
  7.5 ms, p95 166 -> 13 ms. (2) `fts` was set by an UPDATE after the INSERT, leaving a dead copy of
  every row; computing it in the INSERT: p50 7.5 -> 4.0 ms, p95 13 -> 8.7 ms (the same as after a
  VACUUM). (3) `ts_rank_cd` (cover density) walks every position of every matching chunk for an
  OR query; `ts_rank` (term frequency) p50 16 -> 2.3 ms, p95 ~31 -> ~14 ms on the same plan
  (through the repository, interleaved, load 17: p50 26.8 -> 6.5 ms, p95 84 -> 27 ms). It also
  ranks closer to BM25: against SQLite FTS5 `bm25()` on the same corpus and queries, the top 20
  share 82% of their chunks with `ts_rank` vs 29% with `ts_rank_cd`, and the first hit is in
  BM25's top 5 for 96 of 100 queries vs 31.
- PostgreSQL vector vs SQLite vector: the in-process index is the same (its time is the *vector
  (exact, index only)* row and the `vector` part of `timings_ms`: ~2-3 ms); the rest is two database
  round trips, the collection's version check and the chunk fetch (0.3 ms of planning + 0.1 ms of
  execution each when idle, measured), where SQLite's run in process. On a 2-core machine under load
  the PostgreSQL backend waits for a core on each round trip, which is the gap between wall-clock
  and *CPU p50*. A search now reads the version once (it read it twice when it embedded the query).
- Ingestion embeds with one onnxruntime thread (`default_threads`: cores - 1): MiniLM's cost grows
  with chunk length, and 128-token chunks cost about 15x a one-line sentence.
"""
WORDS = 5000
TOPICS = 200
TOP_K = 5
HEADER = ["database", "mode", "chunks", "p50 ms", "p95 ms", "CPU p50 ms", "index load ms"]


class HashEmbedder:
    """384-d vectors from word hashes (a fixed random projection of the bag of words), L2-normalised."""

    name = "local:minilm-l6-v2"
    dimensions = 384

    def __init__(self) -> None:
        import numpy as np

        rng = np.random.default_rng(7)
        self._table = rng.standard_normal((WORDS + 1, 384)).astype(np.float32)

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            ids = [int(w[1:]) for w in t.split() if w[:1] == "w" and w[1:].isdigit()]
            if ids:
                out[i] = self._table[ids].sum(axis=0)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


def corpus(n_docs: int, seed: int = 1) -> list[Any]:
    from podium.rag.documents import parse

    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        topic = rng.randrange(TOPICS)
        paras = [" ".join(_word(rng, topic) for _ in range(80)) + "." for _ in range(10)]
        docs.append(parse(f"doc{d:05d}.txt", "\n\n".join(paras), metadata={"shard": d % 10}))
    return docs


_FUNCTION = ("the", "of", "and", "to", "in", "is", "for", "on", "with", "as", "by", "it", "that", "this", "are",
             "be", "from", "or", "an", "at")


def _word(rng: random.Random, topic: int) -> str:
    """A third of the words are English function words (Zipf-like); the rest Zipf-like words of the
    topic's own slice of the vocabulary."""
    r = int(rng.paretovariate(1.2)) - 1
    return _FUNCTION[r % len(_FUNCTION)] if rng.random() < 0.33 else f"w{(topic * 25 + r) % WORDS}"


def queries(n: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        topic = rng.randrange(TOPICS)
        out.append(" ".join(_word(rng, topic) for _ in range(rng.randint(3, 8))))
    return out


def run_db(label: str, url: str, n_docs: int, n_queries: int, pgvector: bool) -> tuple[list[list[Any]], dict[str, Any]]:
    from podium.rag.chunking import ChunkConfig
    from podium.rag.index import pgvector_status
    from podium.rag.service import CollectionService
    from podium.store import Store
    from podium.store.repos.collections import CollectionRepo

    store = Store.from_url(url)
    pid = store.projects.create_project("bench").id
    hashed = HashEmbedder()
    svc = CollectionService(CollectionRepo(store.engine), embedders=lambda _name: hashed)
    svc.create(pid, "kb", chunking=ChunkConfig("tokens", size=128, overlap=16).to_dict())
    t0 = time.perf_counter()
    batch = 1000
    docs = corpus(n_docs)
    chunks = 0
    for i in range(0, len(docs), batch):
        chunks += svc.add(pid, "kb", docs[i:i + batch])["chunks_embedded"]
    build_s = time.perf_counter() - t0
    t = time.perf_counter()
    svc.search(pid, "kb", "w1", mode="vector", top_k=TOP_K, query_vector=hashed.embed(["w1"])[0])
    load_ms = (time.perf_counter() - t) * 1000  # read the vectors (and build the IVF at >= 20,000 chunks)
    qs = queries(n_queries)
    rows: list[list[Any]] = []
    modes = ["vector", "keyword", "hybrid"]
    idx = svc.index(pid, "kb")
    agree = 0
    exact_lat = []
    for q in qs:
        qv = hashed.embed([q])[0]
        t = time.perf_counter()
        e = idx.search(qv, TOP_K, exact=True)
        exact_lat.append((time.perf_counter() - t) * 1000)
        agree += len({k for k, _ in e} & {k for k, _ in idx.search(qv, TOP_K)})
    recall = agree / (TOP_K * len(qs))
    for mode in modes:
        lat, cpu = [], []
        for q in qs:
            qv = hashed.embed([q])[0] if mode != "keyword" else None
            t, c = time.perf_counter(), time.thread_time()
            svc.search(pid, "kb", q, mode=mode, top_k=TOP_K, query_vector=qv)
            lat.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
        name = f"vector (recall@5 {recall:.2f})" if mode == "vector" else mode
        rows.append([label, name, fmt_int(chunks), f"{percentile(lat, 50):.1f}", f"{percentile(lat, 95):.1f}",
                     f"{percentile(cpu, 50):.1f}", f"{load_ms:.0f}" if mode == "vector" else ""])
    rows.append([label, "vector (exact, index only)", fmt_int(chunks), f"{percentile(exact_lat, 50):.1f}",
                 f"{percentile(exact_lat, 95):.1f}", "", ""])
    if pgvector and label == "PostgreSQL" and pgvector_status(store.engine)["available"]:
        pv = CollectionService(svc.repo, embedders=lambda _name: hashed, backend="pgvector")
        t = time.perf_counter()
        pv.search(pid, "kb", qs[0], mode="vector", top_k=TOP_K, query_vector=hashed.embed([qs[0]])[0])
        sync_ms = (time.perf_counter() - t) * 1000
        lat = []
        agree = 0
        for q in qs:
            qv = hashed.embed([q])[0]
            t = time.perf_counter()
            a = pv.search(pid, "kb", q, mode="vector", top_k=TOP_K, query_vector=qv)
            lat.append((time.perf_counter() - t) * 1000)
            b = svc.search(pid, "kb", q, mode="vector", top_k=TOP_K, query_vector=qv)
            agree += len({h.id for h in a.hits} & {h.id for h in b.hits})
        rows.append([label, f"vector (pgvector HNSW, recall@5 {agree / (TOP_K * len(qs)):.2f})", fmt_int(chunks),
                     f"{percentile(lat, 50):.1f}", f"{percentile(lat, 95):.1f}", "", f"{sync_ms:.0f} (sync + HNSW build)"])
    store.close()
    return rows, {"build_s": build_s, "chunks": chunks}


def ingestion(url: str, n_docs: int) -> tuple[float, float, int]:
    """MiniLM end to end: (chunks/s, docs/s, chunks) over ``n_docs`` synthetic documents."""
    from podium.rag.chunking import ChunkConfig
    from podium.rag.service import CollectionService
    from podium.store import Store
    from podium.store.repos.collections import CollectionRepo

    store = Store.from_url(url)
    pid = store.projects.create_project("ingest").id
    svc = CollectionService(CollectionRepo(store.engine))
    svc.create(pid, "kb", chunking=ChunkConfig("tokens", size=128, overlap=16).to_dict())
    svc.embedders("local:minilm-l6-v2").embed(["warm up"])  # model load is not ingestion
    docs = corpus(n_docs, seed=9)
    t = time.perf_counter()
    out = svc.add(pid, "kb", docs)
    s = time.perf_counter() - t
    store.close()
    return out["chunks_embedded"] / s, n_docs / s, out["chunks_embedded"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10^4 chunks, print only")
    ap.add_argument("--no-pgvector", action="store_true", help="skip the pgvector HNSW row")
    args = ap.parse_args()
    n_docs = 620 if args.quick else 6_200  # ~16 chunks each: ~10^4 / ~10^5 chunks
    n_queries = 50 if args.quick else 100
    load_before = Path("/proc/loadavg").read_text().split()[0]
    rows: list[list[Any]] = []
    builds = {}
    with tempfile.TemporaryDirectory() as tmp:
        r, info = run_db("SQLite", f"sqlite:///{tmp}/bench.db", n_docs, n_queries, False)
        rows += r
        builds["SQLite"] = info
        print(md_table(HEADER, rows), flush=True)
        cps, dps, n_chunks = ingestion(f"sqlite:///{tmp}/ingest.db", 100 if not args.quick else 30)
        from podium.rag.embedder import local_embedder

        emb = local_embedder()
        qlat = []
        for q in ["how do I install podium on linux?", "what is the capital of France", "pricing and licence"] * 20:
            t = time.perf_counter()
            emb.embed([q])
            qlat.append((time.perf_counter() - t) * 1000)
    if not args.quick:  # the SQLite figures land even if the PostgreSQL run is cut short
        _write(rows, n_docs, n_queries, load_before, cps, dps, n_chunks, qlat, builds)
    schema, url = create_schema("bench_rag")
    try:
        r, info = run_db("PostgreSQL", url, n_docs, n_queries, not args.no_pgvector)
        rows += r
        builds["PostgreSQL"] = info
    finally:
        drop_schema(schema)
    _write(rows, n_docs, n_queries, load_before, cps, dps, n_chunks, qlat, builds, print_only=args.quick)


def _write(rows: list[list[Any]], n_docs: int, n_queries: int, load_before: str, cps: float, dps: float,
           n_chunks: int, qlat: list[float], builds: dict[str, Any], print_only: bool = False) -> None:
    table = md_table(HEADER, rows)
    extra = (f"Ingestion (parse, chunk at 128 tokens / 16 overlap, MiniLM-L6-v2 int8 embeddings, SQLite store), "
             f"{fmt_int(n_chunks)} chunks: **{cps:.0f} chunks/s** ({dps:.1f} documents/s). "
             f"Query embed (MiniLM, one short question): p50 {percentile(qlat, 50):.1f} ms, "
             f"p95 {percentile(qlat, 95):.1f} ms. Corpus build with the hashing embedder: "
             + ", ".join(f"{k} {v['build_s']:.0f} s" for k, v in builds.items()) + ".")
    print(table)
    print(extra, flush=True)
    if print_only:
        return
    facts = machine_facts()
    facts["Load average during the run"] = f"{load_before} before, {Path('/proc/loadavg').read_text().split()[0]} after"
    body = "\n\n".join([
        header_block(facts, command_line()),
        f"{fmt_int(n_docs)} synthetic documents of ~16 chunks (128 tokens, 16 overlap) in one collection; "
        f"{n_queries} queries of 3-8 words per mode, top {TOP_K}, through `CollectionService.search` "
        "(what `POST /api/v1/collections/{name}/search` runs). *CPU p50*: the query thread's CPU time, "
        "what a search costs without waiting for a core. Targets: p95 <= 20 ms vector, <= 40 ms hybrid.",
        table, extra, NOTES])
    write_section(SECTION, body)


if __name__ == "__main__":
    main()

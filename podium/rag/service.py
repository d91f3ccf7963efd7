"""Collections as a service: create, ingest (parse, chunk, embed, store a version), search, and
the numbered context a RAG prompt's ``{{context}}`` is filled with.

One :class:`CollectionService` per store (:func:`service_for`); it owns the vector-index cache
and asks ``embedders`` for the embedder a collection names (``local:minilm-l6-v2`` by default;
``gateway:ALIAS`` when the server passes a factory that reaches its gateway).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podium.errors import ConfigurationError, ValidationFailed
from podium.rag.chunking import ChunkConfig, chunk_text
from podium.rag.documents import Document
from podium.rag.embedder import DEFAULT_EMBEDDER, Embedder, local_embedder
from podium.rag.index import FlatIndex, IndexCache, require_pgvector
from podium.rag.search import RRF_K, Hit, check_request, matches, rrf
from podium.store import Store
from podium.store.repos.collections import ChunkRow, CollectionRepo, DocumentIn

__all__ = ["NAME_RE", "CollectionService", "SearchResult", "check_name", "format_context", "service_for"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
EmbedderFactory = Callable[[str], Embedder]


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise ValidationFailed(f"invalid collection name {name!r}: use letters, digits, '.', '_' and '-' "
                               "(up to 200, starting with a letter or digit)",
                               details=[{"field": "name", "message": "[A-Za-z0-9][A-Za-z0-9._-]*"}])
    return name


def default_embedders(name: str) -> Embedder:
    if name == DEFAULT_EMBEDDER:
        return local_embedder()
    raise ConfigurationError(f"the embedder {name!r} is only available inside the server (gateway models); "
                             f"use {DEFAULT_EMBEDDER} here")


@dataclass
class SearchResult:
    collection: str
    version: int
    mode: str
    query: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "version": self.version, "mode": self.mode, "query": self.query,
                "data": [h.to_dict() for h in self.hits], "timings_ms": self.timings_ms,
                "context": format_context(self.hits)}


def format_context(hits: Sequence[Hit]) -> str:
    """The chunks as numbered passages for a prompt's ``{{context}}``; cite them as [1], [2]..."""
    parts = []
    for n, h in enumerate(hits, start=1):
        head = h.title or h.document_id
        if h.heading:
            head += f" > {h.heading}"
        parts.append(f"[{n}] ({head})\n{h.text.strip()}")
    return "\n\n".join(parts)


def _doc_hash(doc: Document) -> str:
    blob = json.dumps({"t": doc.text, "m": doc.metadata, "title": doc.title, "k": doc.kind}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CollectionService:
    def __init__(self, repo: CollectionRepo, *, embedders: EmbedderFactory | None = None,
                 cache: IndexCache | None = None, backend: str = "flat") -> None:
        if backend not in ("flat", "pgvector"):
            raise ConfigurationError(f"PODIUM_RAG_INDEX must be flat or pgvector, not {backend!r}")
        self.repo = repo
        self.embedders: EmbedderFactory = embedders or default_embedders
        self.cache = cache or IndexCache()
        self.backend = backend
        self._synced: dict[tuple[str, str], int] = {}  # pgvector: the version each collection was synced at

    def with_embedders(self, embedders: EmbedderFactory) -> CollectionService:
        """The same service (repository, index cache, backend) with a per-request embedder factory."""
        out = CollectionService(self.repo, embedders=embedders, cache=self.cache, backend=self.backend)
        out._synced = self._synced
        return out

    def _pgvector(self, project_id: str, name: str, version: int, dims: int, q: Any, n: int) -> list[tuple[int, float]]:
        key = (project_id, name)
        if self._synced.get(key) != version:
            require_pgvector(self.repo.engine)
            self.repo.pgvector_sync(project_id, name, dims)
            self._synced[key] = version
        return self.repo.pgvector_search(project_id, name, dims, [float(x) for x in q], n)

    # --- collections --------------------------------------------------------------------------

    def create(self, project_id: str, name: str, *, embedder: str | None = None,
               chunking: Mapping[str, Any] | None = None, description: str | None = None,
               metadata: dict[str, Any] | None = None, created_by: str | None = None) -> dict[str, Any]:
        check_name(name)
        emb = embedder or DEFAULT_EMBEDDER
        if emb != DEFAULT_EMBEDDER and not emb.startswith("gateway:"):
            raise ValidationFailed(f"unknown embedder {emb!r}; use {DEFAULT_EMBEDDER} or gateway:ALIAS",
                                   details=[{"field": "embedder", "message": f"{DEFAULT_EMBEDDER}|gateway:ALIAS"}])
        cfg = ChunkConfig.from_dict(dict(chunking or {}))
        return self.repo.create(project_id, name, embedder=emb, chunking=cfg.to_dict(), description=description,
                                metadata=metadata, created_by=created_by)

    def delete(self, project_id: str, name: str) -> None:
        self.repo.delete(project_id, name)
        self.cache.drop((project_id, name))

    # --- ingestion ----------------------------------------------------------------------------

    def add(self, project_id: str, name: str, documents: Sequence[Document], *, replace: bool = False,
            delete_ids: Sequence[str] = (), message: str | None = None,
            created_by: str | None = None) -> dict[str, Any]:
        """Chunk and embed the new or changed documents and store them as one new version
        (unchanged ones are skipped: same text, title and metadata)."""
        col = self.repo.get(project_id, name)
        cfg = ChunkConfig.from_dict(col["chunking"])
        seen: set[str] = set()
        for d in documents:
            if d.id in seen:
                raise ValidationFailed(f"document id {d.id!r} appears twice in one upload",
                                       details=[{"field": "documents", "message": f"duplicate id {d.id}"}])
            seen.add(d.id)
        t0 = time.perf_counter()
        current = self.repo.current_hashes(project_id, name)
        todo = [(d, h) for d in documents if current.get(d.id) != (h := _doc_hash(d))]
        pieces = [(d, h, chunk_text(d.text, cfg)) for d, h in todo]
        t1 = time.perf_counter()
        texts = [self._embed_text(d, c.text, c.heading) for d, _, chunks in pieces for c in chunks]
        dims = None
        vecs: Any = []
        if texts:
            emb = self.embedders(col["embedder"])
            vecs = emb.embed(texts)
            dims = int(vecs.shape[1])
        t2 = time.perf_counter()
        rows: list[DocumentIn] = []
        i = 0
        for d, h, chunks in pieces:
            crow = []
            for c in chunks:
                crow.append(ChunkRow(c.index, c.text, c.start, c.end, c.tokens, c.heading,
                                     vecs[i].astype("<f4").tobytes()))
                i += 1
            rows.append(DocumentIn(d.id, d.title, d.source, d.kind, d.metadata, h, len(d.text), crow))
        out = self.repo.apply(project_id, name, upsert=rows, delete_ids=delete_ids, replace=replace,
                              dimensions=dims, message=message, created_by=created_by)
        t3 = time.perf_counter()
        out["unchanged"] = len(documents) - len(todo)
        out["chunks_embedded"] = len(texts)
        out["timings_ms"] = {"chunk": round((t1 - t0) * 1000, 2), "embed": round((t2 - t1) * 1000, 2),
                             "store": round((t3 - t2) * 1000, 2)}
        return out

    @staticmethod
    def _embed_text(doc: Document, text: str, heading: str | None) -> str:
        """What is embedded: the chunk with its document title and heading in front (the stored text
        stays the chunk alone)."""
        head = " > ".join(x for x in (doc.title, heading) if x)
        return f"{head}\n{text}" if head else text

    # --- search -------------------------------------------------------------------------------

    def index(self, project_id: str, name: str, latest: tuple[int, int | None, str] | None = None) -> FlatIndex:
        """The collection's current vectors (cached per version); ``latest``: the caller's
        :meth:`CollectionRepo.latest_version` read, so a search checks the version once."""
        version, dims, _ = latest or self.repo.latest_version(project_id, name)
        key = (project_id, name)
        idx = self.cache.get(key, version)
        if idx is None:
            keys, docs, blobs = self.repo.vectors(project_id, name)
            meta = self.repo.document_metadata(project_id, name)
            idx = FlatIndex.build(version, keys, docs, blobs, dims or 1, meta)
            self.cache.put(key, idx)
        return idx

    def embed_query(self, project_id: str, name: str, query: str, embedder: str | None = None) -> Any:
        if embedder is None:
            embedder = self.repo.latest_version(project_id, name)[2]
        return self.embedders(embedder).embed([query])[0]

    def search(self, project_id: str, name: str, query: str, *, mode: str = "hybrid", top_k: int = 5,
               filters: Mapping[str, Any] | None = None, candidates: int | None = None,
               query_vector: Any = None) -> SearchResult:
        check_request(mode, top_k, filters)
        if not query.strip() and query_vector is None:
            raise ValidationFailed("query is empty; give the text to search for",
                                   details=[{"field": "query", "message": "required"}])
        t0 = time.perf_counter()
        # one read of the collection's row per search (a database round trip: on PostgreSQL under
        # load each one costs more than the in-process vector scan)
        latest = self.repo.latest_version(project_id, name)
        idx = self.index(project_id, name, latest)
        allowed: set[str] | None = None
        if filters:
            allowed = {d for d, m in idx.metadata.items() if matches({**m, "document_id": d}, filters)}
        n = max(candidates or top_k * 4, top_k)
        timings: dict[str, float] = {}
        vec_hits: list[tuple[int, float]] = []
        kw_hits: list[tuple[int, float]] = []
        if mode in ("vector", "hybrid"):
            t = time.perf_counter()
            q = query_vector if query_vector is not None else self.embed_query(project_id, name, query, latest[2])
            timings["embed"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            if self.backend == "pgvector" and allowed is None:
                vec_hits = self._pgvector(project_id, name, idx.version, int(idx.matrix.shape[1]), q, n)
            else:  # the flat index (filters on pgvector too: exact, after masking)
                mask = idx.mask(allowed) if allowed is not None else None
                vec_hits = idx.search(q, n, mask=mask)
            timings["vector"] = (time.perf_counter() - t) * 1000
        if mode in ("keyword", "hybrid"):
            t = time.perf_counter()
            raw = self.repo.keyword(project_id, name, query, n * (10 if allowed is not None else 1))
            if allowed is not None:
                raw = [(k, s) for k, s in raw if idx.document_of(k) in allowed]
            kw_hits = raw[:n]
            timings["keyword"] = (time.perf_counter() - t) * 1000
        if mode == "vector":
            ranked = vec_hits[:top_k]
        elif mode == "keyword":
            ranked = kw_hits[:top_k]
        else:
            ranked = rrf([[k for k, _ in vec_hits], [k for k, _ in kw_hits]], RRF_K)[:top_k]
        t = time.perf_counter()
        rows = self.repo.chunks_by_key(project_id, name, [k for k, _ in ranked])
        vs, ks = dict(vec_hits), dict(kw_hits)
        hits: list[Hit] = []
        for k, s in ranked:
            r = rows.get(k)
            if r is None:  # replaced between the index read and this one
                continue
            per = {**({"vector": round(vs[k], 6)} if k in vs else {}), **({"keyword": round(ks[k], 6)} if k in ks else {})}
            hits.append(Hit(rank=len(hits) + 1, score=round(s, 6), id=r["id"], document_id=r["document_id"],
                            text=r["text"], title=r["title"], source=r["source"], heading=r["heading"],
                            start=r["start"], end=r["end"], metadata=r["metadata"], scores=per, key=k))
        timings["fetch"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        return SearchResult(name, idx.version, mode, query, hits, {k: round(v, 3) for k, v in timings.items()})


_services: weakref.WeakKeyDictionary[Any, CollectionService] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def service_for(store: Store, *, backend: str = "flat") -> CollectionService:
    """The store's collection service (one per store and backend, so the index cache is shared)."""
    with _lock:
        svc = _services.get(store)
        if svc is None or svc.backend != backend:
            svc = _services[store] = CollectionService(CollectionRepo(store.engine), backend=backend)
        return svc

"""Knowledge collections' SQL (``collection``, ``collection_version``, ``collection_document``,
``collection_chunk``) and the keyword index.

Versions work like datasets' (podium/store/repos/evals.py): a document or chunk row is valid
for ``valid_from <= v < valid_to`` (NULL: current). A write closes the rows it replaces or
removes and inserts the new ones under the next version, so a version never changes once
written; a write that changes nothing makes no version. Search reads the current version.

The keyword index is dialect-specific and created here at run time (``IF NOT EXISTS``; the
migration only has portable tables): on SQLite an FTS5 virtual table ``rag_fts`` (rowid = the
chunk's ``key``, a partition token column ``p`` and the text, Porter-stemmed; ranked with
``bm25()``), holding current chunks only; on PostgreSQL the ``fts`` column (``to_tsvector('english',
text)``, computed in the INSERT, GIN-indexed by the migration) ranked with ``ts_rank`` over an OR
of the query's terms; a write of :data:`ANALYZE_MIN` chunks or more runs ``ANALYZE`` so the planner
uses the GIN index (see :meth:`CollectionRepo._analyze`).
Vectors are stored with each chunk (float32 bytes); podium/rag/index.py searches them.
Every query is scoped by project.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Text, and_, bindparam, delete, func, insert, select, text, update

from podium.errors import Conflict, NotFound
from podium.store import tables as t
from podium.store.repos._tx import locked_write

__all__ = ["ANALYZE_MIN", "STOPWORDS", "ChunkRow", "CollectionRepo", "DocumentIn", "chunk_key"]

R = TypeVar("R")
_CHUNK = 500
#: PostgreSQL: a write inserting at least this many chunks refreshes the tables' statistics (ANALYZE).
ANALYZE_MIN = 1000
_WORDS = re.compile(r"\w+", re.UNICODE)
#: English function words dropped from keyword queries (unless the query is nothing else): they match
#: most chunks, add almost nothing to BM25 (idf near 0) and make the full-text index rank every chunk.
STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves"])


def _now() -> datetime:
    return datetime.now(UTC)


def chunk_key(project_id: str, collection: str, document_id: str, valid_from: int, seq: int) -> int:
    """A chunk's 63-bit integer key (the keyword index's rowid): a hash of its identity."""
    h = hashlib.blake2b(f"{project_id}\0{collection}\0{document_id}\0{valid_from}\0{seq}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big") & 0x7FFF_FFFF_FFFF_FFFF


def _partition(project_id: str, collection: str) -> str:
    return "p" + hashlib.blake2b(f"{project_id}\0{collection}".encode(), digest_size=8).hexdigest()


@dataclass
class ChunkRow:
    seq: int
    text: str
    start: int
    end: int
    tokens: int
    heading: str | None
    embedding: bytes


@dataclass
class DocumentIn:
    id: str
    title: str | None
    source: str | None
    kind: str
    metadata: dict[str, Any]
    content_hash: str
    chars: int
    chunks: list[ChunkRow]


def _collection(r: Any) -> dict[str, Any]:
    return {"name": r.name, "description": r.description, "embedder": r.embedder, "dimensions": r.dimensions,
            "chunking": dict(r.chunking or {}), "metadata": dict(r.metadata or {}),
            "latest_version": r.latest_version, "created_by": r.created_by, "created_at": r.created_at,
            "updated_at": r.updated_at}


def _document(r: Any) -> dict[str, Any]:
    return {"id": r.id, "title": r.title, "source": r.source, "kind": r.kind, "metadata": dict(r.metadata or {}),
            "content_hash": r.content_hash, "chars": r.chars, "chunk_count": r.chunk_count,
            "version": r.valid_from, "valid_to": r.valid_to, "created_at": r.created_at}


def _at(c: Any, version: int) -> Any:
    return and_(c.valid_from <= version, (c.valid_to.is_(None)) | (c.valid_to > version))


class CollectionRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- run-time structures ---------------------------------------------------------------------

    def ensure_indexes(self) -> None:
        """Create the dialect's keyword index if missing (once per process)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with self.engine.begin() as conn:
                if self.dialect == "sqlite":
                    conn.exec_driver_sql("CREATE VIRTUAL TABLE IF NOT EXISTS rag_fts USING fts5(p, text, "
                                         "tokenize='porter unicode61')")
            self._ready = True

    def _write(self, fn: Callable[[Connection], R], what: str) -> R:
        self.ensure_indexes()
        return locked_write(self.engine, fn, what=what)

    # --- collections ---------------------------------------------------------------------------

    def _row(self, conn: Connection, project_id: str, name: str) -> Any:
        c = t.collection.c
        row = conn.execute(select(t.collection).where(c.project_id == project_id, c.name == name)).first()
        if row is None:
            raise NotFound(f"no collection named {name!r}; create it with `podium collections create {name}` "
                           "or POST /api/v1/collections")
        return row

    def create(self, project_id: str, name: str, *, embedder: str, chunking: dict[str, Any],
               description: str | None = None, metadata: dict[str, Any] | None = None,
               created_by: str | None = None) -> dict[str, Any]:
        def work(conn: Connection) -> dict[str, Any]:
            c = t.collection.c
            if conn.execute(select(c.name).where(c.project_id == project_id, c.name == name)).first():
                raise Conflict(f"collection {name!r} already exists; add documents to it or pick another name")
            now = _now()
            conn.execute(insert(t.collection).values(
                project_id=project_id, name=name, description=description, embedder=embedder, dimensions=None,
                chunking=chunking, metadata=metadata or {}, latest_version=0, created_by=created_by,
                created_at=now, updated_at=now))
            return dict(_collection(self._row(conn, project_id, name)))
        return self._write(work, f"collection {name!r}")

    def get(self, project_id: str, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            out = _collection(self._row(conn, project_id, name))
            v = t.collection_version.c
            ver = conn.execute(select(t.collection_version).where(
                v.project_id == project_id, v.collection == name, v.version == out["latest_version"])).first()
        out["document_count"] = ver.document_count if ver else 0
        out["chunk_count"] = ver.chunk_count if ver else 0
        return out

    def latest_version(self, project_id: str, name: str) -> tuple[int, int | None, str]:
        """``(latest_version, dimensions, embedder)``: one primary-key read (search checks its cache with it)."""
        c = t.collection.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.latest_version, c.dimensions, c.embedder).where(
                c.project_id == project_id, c.name == name)).first()
        if row is None:
            raise NotFound(f"no collection named {name!r}; `podium collections list` shows the project's collections")
        return int(row.latest_version), row.dimensions, str(row.embedder)

    def list_collections(self, project_id: str, *, limit: int = 200) -> list[dict[str, Any]]:
        c, v = t.collection.c, t.collection_version.c
        q = (select(t.collection, v.document_count, v.chunk_count)
             .join(t.collection_version, and_(v.project_id == c.project_id, v.collection == c.name,
                                              v.version == c.latest_version), isouter=True)
             .where(c.project_id == project_id).order_by(c.name).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{**_collection(r), "document_count": r.document_count or 0, "chunk_count": r.chunk_count or 0}
                for r in rows]

    def delete(self, project_id: str, name: str) -> None:
        def work(conn: Connection) -> None:
            self._row(conn, project_id, name)
            if self.dialect == "sqlite":
                conn.exec_driver_sql("DELETE FROM rag_fts WHERE p = ?", (_partition(project_id, name),))
            for table in (t.collection_chunk, t.collection_document, t.collection_version):
                conn.execute(delete(table).where(table.c.project_id == project_id, table.c.collection == name))
            conn.execute(delete(t.collection).where(t.collection.c.project_id == project_id,
                                                    t.collection.c.name == name))
        self._write(work, f"collection {name!r}")

    # --- versions and documents ------------------------------------------------------------------

    def resolve_version(self, project_id: str, name: str, version: int | None) -> int:
        latest = self.latest_version(project_id, name)[0]
        if version is None:
            return latest
        if not 1 <= version <= latest:
            raise NotFound(f"collection {name!r} has versions 1 to {latest}; there is no version {version}",
                           details=[{"field": "version", "latest": latest}])
        return version

    def list_versions(self, project_id: str, name: str) -> list[dict[str, Any]]:
        v = t.collection_version.c
        with self.engine.connect() as conn:
            self._row(conn, project_id, name)
            rows = conn.execute(select(t.collection_version).where(
                v.project_id == project_id, v.collection == name).order_by(v.version.desc())).all()
        return [{"version": r.version, "document_count": r.document_count, "chunk_count": r.chunk_count,
                 "added": r.added, "updated": r.updated, "removed": r.removed, "message": r.message,
                 "created_by": r.created_by, "created_at": r.created_at} for r in rows]

    def current_hashes(self, project_id: str, name: str) -> dict[str, str]:
        """``{document id: content hash}`` of the current version."""
        d = t.collection_document.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(d.id, d.content_hash).where(
                d.project_id == project_id, d.collection == name, d.valid_to.is_(None))).all()
        return {r.id: r.content_hash for r in rows}

    def list_documents(self, project_id: str, name: str, *, version: int | None = None, limit: int = 1000,
                       offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        v = self.resolve_version(project_id, name, version)
        d = t.collection_document.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.collection_document).where(
                d.project_id == project_id, d.collection == name, _at(d, v)).order_by(d.id)
                .limit(limit).offset(offset)).all()
        return v, [_document(r) for r in rows]

    def list_chunks(self, project_id: str, name: str, *, document_id: str | None = None,
                    version: int | None = None, limit: int = 1000, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        v = self.resolve_version(project_id, name, version)
        ch = t.collection_chunk.c
        q = select(ch.document_id, ch.seq, ch.valid_from, ch.text, ch.start, ch.end, ch.tokens, ch.heading,
                   ch.key).where(ch.project_id == project_id, ch.collection == name, _at(ch, v))
        if document_id is not None:
            q = q.where(ch.document_id == document_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(ch.document_id, ch.seq).limit(limit).offset(offset)).all()
        return v, [{"id": f"{r.document_id}#{r.seq}", "document_id": r.document_id, "seq": r.seq, "text": r.text,
                    "start": r.start, "end": r.end, "tokens": r.tokens, "heading": r.heading, "key": r.key,
                    "version": r.valid_from} for r in rows]

    def apply(self, project_id: str, name: str, *, upsert: Sequence[DocumentIn], delete_ids: Iterable[str] = (),
              replace: bool = False, dimensions: int | None = None, message: str | None = None,
              created_by: str | None = None) -> dict[str, Any]:
        """Write ``upsert`` (new or changed documents with their chunks) and remove ``delete_ids``
        (with ``replace``: every current document not in ``upsert``) as one new version."""
        inserted = [0]  # chunk rows written (set by `work`)

        def work(conn: Connection) -> dict[str, Any]:
            col = self._row(conn, project_id, name)
            if dimensions is not None and col.dimensions not in (None, dimensions):
                raise Conflict(f"collection {name!r} holds {col.dimensions}-dimensional vectors, these are "
                               f"{dimensions}-dimensional; use the collection's embedder ({col.embedder})")
            d, ch = t.collection_document.c, t.collection_chunk.c
            current = {r.id: r for r in conn.execute(select(d.id, d.content_hash, d.chunk_count)
                                                     .where(d.project_id == project_id, d.collection == name,
                                                            d.valid_to.is_(None))).all()}
            version = int(col.latest_version) + 1
            todo = [doc for doc in upsert if doc.id not in current or current[doc.id].content_hash != doc.content_hash]
            added = [doc for doc in todo if doc.id not in current]
            updated = [doc for doc in todo if doc.id in current]
            keep = {doc.id for doc in upsert}
            removed = {i for i in delete_ids if i in current and i not in keep}
            if replace:
                removed |= {i for i in current if i not in keep}
            closing = [doc.id for doc in updated] + sorted(removed)
            if not todo and not removed:
                return {"name": name, "version": col.latest_version, "changed": False, "added": 0, "updated": 0,
                        "removed": 0}
            for part in (closing[i:i + _CHUNK] for i in range(0, len(closing), _CHUNK)):
                if self.dialect == "sqlite":
                    keys = conn.execute(select(ch.key).where(ch.project_id == project_id, ch.collection == name,
                                                             ch.valid_to.is_(None), ch.document_id.in_(part))).scalars().all()
                    for kpart in (keys[i:i + _CHUNK] for i in range(0, len(keys), _CHUNK)):
                        conn.exec_driver_sql(f"DELETE FROM rag_fts WHERE rowid IN ({','.join('?' * len(kpart))})",
                                             tuple(kpart))
                conn.execute(update(t.collection_chunk).where(ch.project_id == project_id, ch.collection == name,
                                                              ch.valid_to.is_(None), ch.document_id.in_(part))
                             .values(valid_to=version))
                conn.execute(update(t.collection_document).where(d.project_id == project_id, d.collection == name,
                                                                 d.valid_to.is_(None), d.id.in_(part))
                             .values(valid_to=version))
            now = _now()
            docs, chunks, fts = [], [], []
            part_token = _partition(project_id, name)
            for doc in todo:
                docs.append({"project_id": project_id, "collection": name, "id": doc.id, "valid_from": version,
                             "valid_to": None, "title": doc.title, "source": doc.source, "kind": doc.kind,
                             "metadata": doc.metadata, "content_hash": doc.content_hash, "chars": doc.chars,
                             "chunk_count": len(doc.chunks), "created_at": now})
                for c in doc.chunks:
                    key = chunk_key(project_id, name, doc.id, version, c.seq)
                    chunks.append({"project_id": project_id, "collection": name, "document_id": doc.id,
                                   "valid_from": version, "seq": c.seq, "key": key, "valid_to": None, "text": c.text,
                                   "start": c.start, "end": c.end, "tokens": c.tokens, "heading": c.heading,
                                   "embedding": c.embedding})
                    fts.append((key, part_token, c.text))
            for i in range(0, len(docs), _CHUNK):
                conn.execute(insert(t.collection_document), docs[i:i + _CHUNK])
            if self.dialect == "postgresql":
                # the stored tsvector (GIN-indexed) is computed in the INSERT itself: an UPDATE after it
                # left a dead copy of every row (twice the heap for the keyword search to read)
                stmt = insert(t.collection_chunk).values(fts=func.to_tsvector(text("'english'"),
                                                                              bindparam("fts_src", type_=Text)))
                for row in chunks:
                    row["fts_src"] = row["text"]
            else:
                stmt = insert(t.collection_chunk)
            for i in range(0, len(chunks), _CHUNK):
                conn.execute(stmt, chunks[i:i + _CHUNK])
            if self.dialect == "sqlite" and fts:
                conn.exec_driver_sql("INSERT INTO rag_fts(rowid, p, text) VALUES (?, ?, ?)", fts)
            inserted[0] = len(chunks)
            n_docs = conn.execute(select(func.count()).select_from(t.collection_document).where(
                d.project_id == project_id, d.collection == name, d.valid_to.is_(None))).scalar_one()
            n_chunks = conn.execute(select(func.count()).select_from(t.collection_chunk).where(
                ch.project_id == project_id, ch.collection == name, ch.valid_to.is_(None))).scalar_one()
            conn.execute(insert(t.collection_version).values(
                project_id=project_id, collection=name, version=version, document_count=n_docs,
                chunk_count=n_chunks, added=len(added), updated=len(updated), removed=len(removed),
                message=message, created_by=created_by, created_at=now))
            values: dict[str, Any] = {"latest_version": version, "updated_at": now}
            if dimensions is not None and col.dimensions is None:
                values["dimensions"] = dimensions
            conn.execute(update(t.collection).where(t.collection.c.project_id == project_id,
                                                    t.collection.c.name == name).values(**values))
            return {"name": name, "version": version, "changed": True, "added": len(added), "updated": len(updated),
                    "removed": len(removed), "document_count": n_docs, "chunk_count": n_chunks}
        out = self._write(work, f"collection {name!r}")
        if self.dialect == "postgresql" and inserted[0] >= ANALYZE_MIN:
            self._analyze()
        return out

    def _analyze(self) -> None:
        """Refresh PostgreSQL's statistics of the chunk and document tables after a large write.
        Without them (a new or fast-grown table, before autovacuum's next pass) the planner takes
        ``project_id = ? AND collection = ? AND valid_to IS NULL`` for a handful of rows and reads
        the whole collection through that index, testing ``fts @@ query`` on every row, instead of
        the GIN index: 10-20x slower keyword search at 10^5 chunks (docs/benchmarks.md)."""
        with self.engine.connect() as conn:
            conn.execute(text("ANALYZE collection_chunk"))
            conn.execute(text("ANALYZE collection_document"))
            conn.commit()

    # --- search support ---------------------------------------------------------------------------

    def vectors(self, project_id: str, name: str) -> tuple[list[int], list[str], list[bytes]]:
        """``(keys, document ids, embeddings)`` of the current chunks, in key order."""
        ch = t.collection_chunk.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(ch.key, ch.document_id, ch.embedding).where(
                ch.project_id == project_id, ch.collection == name, ch.valid_to.is_(None)).order_by(ch.key)).all()
        return [r.key for r in rows], [r.document_id for r in rows], [bytes(r.embedding) for r in rows]

    def keyword(self, project_id: str, name: str, query: str, limit: int) -> list[tuple[int, float]]:
        """``[(chunk key, score)]``, best first: BM25 (SQLite FTS5) or ``ts_rank`` (PostgreSQL, over the
        GIN-indexed ``fts``), over an OR of the query's words. Higher is better."""
        self.ensure_indexes()
        words = list(dict.fromkeys(w.lower() for w in _WORDS.findall(query)))[:64]
        words = [w for w in words if w not in STOPWORDS] or words
        if not words:
            return []
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                match = f"p:{_partition(project_id, name)} AND (" + " OR ".join(f'text:"{w}"' for w in words) + ")"
                rows = conn.exec_driver_sql(
                    "SELECT rowid, bm25(rag_fts, 0.0, 1.0) AS s FROM rag_fts WHERE rag_fts MATCH ? ORDER BY s LIMIT ?",
                    (match, limit)).all()
                return [(int(r[0]), -float(r[1])) for r in rows]
            # ts_rank (term frequency), not ts_rank_cd: cover density over an OR of words walks every
            # position of every matching chunk, 5-7x the server time at 10^5 chunks (docs/benchmarks.md)
            rows = conn.execute(text(
                "SELECT key, ts_rank(fts, q) AS s FROM collection_chunk, to_tsquery('english', :q) q "
                "WHERE fts @@ q AND project_id = :p AND collection = :c AND valid_to IS NULL "
                "ORDER BY s DESC, key LIMIT :n"),
                {"q": " | ".join(words), "p": project_id, "c": name, "n": limit}).all()
            return [(int(r[0]), float(r[1])) for r in rows]

    def chunks_by_key(self, project_id: str, name: str, keys: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The current chunks with these keys, with their document's title, source and metadata."""
        if not keys:
            return {}
        ch, d = t.collection_chunk.c, t.collection_document.c
        # Only `key IN (...)` in SQL, so the unique key index is used (with the project and collection
        # there too, SQLite's planner prefers the (project, collection, valid_to) index and scans every
        # chunk); the key is a hash of the chunk's identity, its project and collection are checked here.
        q = (select(ch.key, ch.project_id, ch.collection, ch.valid_to, ch.document_id, ch.seq, ch.text, ch.start,
                    ch.end, ch.heading, ch.valid_from, d.title, d.source, d.metadata)
             .join(t.collection_document, and_(d.project_id == ch.project_id, d.collection == ch.collection,
                                               d.id == ch.document_id, d.valid_from == ch.valid_from))
             .where(ch.key.in_(list(keys))))
        with self.engine.connect() as conn:
            rows = [r for r in conn.execute(q).all()
                    if r.project_id == project_id and r.collection == name and r.valid_to is None]
        return {int(r.key): {"id": f"{r.document_id}#{r.seq}", "document_id": r.document_id, "seq": r.seq,
                             "text": r.text, "start": r.start, "end": r.end, "heading": r.heading,
                             "title": r.title, "source": r.source, "metadata": dict(r.metadata or {}),
                             "version": r.valid_from} for r in rows}

    def document_metadata(self, project_id: str, name: str) -> dict[str, dict[str, Any]]:
        """``{document id: metadata}`` of the current documents (metadata filters run over these)."""
        d = t.collection_document.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(d.id, d.metadata, d.kind, d.source).where(
                d.project_id == project_id, d.collection == name, d.valid_to.is_(None))).all()
        return {r.id: {"kind": r.kind, "source": r.source, **dict(r.metadata or {})} for r in rows}

    # --- pgvector (PostgreSQL with the `vector` extension; PODIUM_RAG_INDEX=pgvector) -------------

    def pgvector_sync(self, project_id: str, name: str, dims: int) -> int:
        """Make ``rag_vec_<dims>`` hold exactly the collection's current vectors (created with an
        HNSW cosine index if missing); returns the rows inserted. Idempotent."""
        table = f"rag_vec_{int(dims)}"
        part = _partition(project_id, name)
        with self.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {table} (key bigint PRIMARY KEY, part text NOT NULL, "
                                 f"embedding vector({int(dims)}) NOT NULL)")
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} "
                                 "USING hnsw (embedding vector_cosine_ops)")
            conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {table}_part ON {table} (part)")
            have = {int(r[0]) for r in conn.exec_driver_sql(f"SELECT key FROM {table} WHERE part = %(p)s",
                                                             {"p": part}).all()}
            ch = t.collection_chunk.c
            rows = conn.execute(select(ch.key, ch.embedding).where(
                ch.project_id == project_id, ch.collection == name, ch.valid_to.is_(None))).all()
            want = {int(r.key): bytes(r.embedding) for r in rows}
            stale = sorted(have - want.keys())
            for i in range(0, len(stale), _CHUNK):
                conn.exec_driver_sql(f"DELETE FROM {table} WHERE key = ANY(%(k)s)", {"k": stale[i:i + _CHUNK]})
            new = [(k, part, "[" + ",".join(repr(x) for x in struct.unpack(f"<{dims}f", b)) + "]")
                   for k, b in want.items() if k not in have]
            for i in range(0, len(new), _CHUNK):
                conn.exec_driver_sql(f"INSERT INTO {table} (key, part, embedding) VALUES (%s, %s, %s::vector)",
                                     new[i:i + _CHUNK])
        return len(new)

    def pgvector_search(self, project_id: str, name: str, dims: int, query: Sequence[float],
                        k: int) -> list[tuple[int, float]]:
        """``[(chunk key, cosine similarity)]`` from the HNSW index (approximate), best first."""
        table = f"rag_vec_{int(dims)}"
        q = "[" + ",".join(repr(float(x)) for x in query) + "]"
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL hnsw.ef_search = {max(40, 2 * int(k))}")
            conn.exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.exec_driver_sql(
                f"SELECT key, 1 - (embedding <=> %(q)s::vector) AS s FROM {table} WHERE part = %(p)s "
                f"ORDER BY embedding <=> %(q)s::vector LIMIT %(k)s",
                {"q": q, "p": _partition(project_id, name), "k": int(k)}).all()
        return [(int(r[0]), float(r[1])) for r in rows]

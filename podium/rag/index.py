"""The vector index: exact (flat) cosine search over a collection's current chunk vectors.

Vectors live in the project's own database (``collection_chunk.embedding``, float32). The
first search of a collection version reads them once into one contiguous float32 matrix,
kept in a small per-process LRU keyed by ``(project, collection)`` and checked against the
collection's ``latest_version`` (one primary-key read) on every search, so a new version
written by any process is picked up at once. Up to :data:`IVF_MIN` chunks a search is one
matrix-vector product and an ``argpartition``: exact nearest neighbours, what sqlite-vec's
``vec0`` does as a brute-force scan. Larger collections get an inverted-file index on first
search (k-means into ~sqrt(n) lists over a sample, the rows stored list by list so each probe is
one contiguous slice): a query scans the :data:`NPROBE_SHARE` of lists nearest to it, ~10% of
the rows, instead of all of them (recall@5 against exact search is in docs/benchmarks.md).
Searches with a metadata filter, and ``exact=True``, scan every row.

Why not sqlite-vec: it is a loadable SQLite extension, and the ``sqlite3`` module of the
Pythons Podium is installed into (pyenv, python.org builds) is usually compiled without
``enable_load_extension``, so it could not be the default. Why not pgvector by default: the
extension is not on every PostgreSQL server; :func:`pgvector_status` says whether it is, and
``PODIUM_RAG_INDEX=pgvector`` fails with a message naming the package when it is not.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from podium.errors import ConfigurationError

__all__ = ["IVF_MIN", "NPROBE_SHARE", "FlatIndex", "IndexCache", "pgvector_status", "require_pgvector"]

#: Collections with at least this many chunks get the inverted-file index; smaller ones are scanned.
IVF_MIN = 20_000
#: The share of inverted lists a query probes (at least 8).
NPROBE_SHARE = 1 / 10

PGVECTOR_HINT = ("the PostgreSQL extension `vector` (pgvector) is not installed on this server: install the "
                 "package `postgresql-15-pgvector` (Debian/Ubuntu; `postgresql-NN-pgvector` for your version) "
                 "or build it from https://github.com/pgvector/pgvector, or unset PODIUM_RAG_INDEX to use the "
                 "built-in flat index")


@dataclass
class FlatIndex:
    """One collection version's vectors: ``keys[i]`` (chunk key) and ``docs[i]`` for row ``i``."""

    version: int
    keys: Any  # int64 array, ascending
    docs: Any  # object array of document ids
    matrix: Any  # float32 (n, d), rows L2-normalised
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    ivf: tuple[Any, Any] | None = None  # (centroids, row offsets per list): rows are stored list by list
    _sorter: Any = None  # argsort of keys once the IVF has reordered the rows
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, version: int, keys: list[int], docs: list[str], blobs: list[bytes], dimensions: int,
              metadata: dict[str, dict[str, Any]] | None = None) -> FlatIndex:
        import numpy as np

        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dimensions) if blobs else \
            np.zeros((0, dimensions), dtype=np.float32)
        return cls(version, np.asarray(keys, dtype=np.int64), np.asarray(docs, dtype=object),
                   np.ascontiguousarray(matrix, dtype=np.float32), metadata or {})

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def mask(self, documents: Collection[str]) -> Any:
        import numpy as np

        return np.isin(self.docs, np.asarray(list(documents), dtype=object))

    def document_of(self, key: int) -> str | None:
        import numpy as np

        if self._sorter is None:
            i = int(np.searchsorted(self.keys, key))
            return str(self.docs[i]) if i < len(self) and int(self.keys[i]) == key else None
        j = int(np.searchsorted(self.keys, key, sorter=self._sorter))
        if j >= len(self):
            return None
        i = int(self._sorter[j])
        return str(self.docs[i]) if int(self.keys[i]) == key else None

    def build_ivf(self, seed: int = 0) -> None:
        """Cluster the rows into ~sqrt(n) lists (spherical k-means on a sample, 8 rounds) and store
        them list by list. Idempotent; called by the first search of a large collection."""
        import numpy as np

        with self._lock:
            if self.ivf is not None or len(self) < 2:
                return
            n = len(self)
            nlist = max(16, min(2048, round(math.sqrt(n))))
            rng = np.random.default_rng(seed)
            sample = self.matrix[rng.choice(n, size=min(n, nlist * 48), replace=False)]
            cent = sample[rng.choice(len(sample), size=nlist, replace=False)].copy()
            for _ in range(8):
                assign = np.argmax(sample @ cent.T, axis=1)
                sums = np.zeros_like(cent)
                np.add.at(sums, assign, sample)
                counts = np.bincount(assign, minlength=nlist)
                live = counts > 0
                cent[live] = sums[live] / np.linalg.norm(sums[live], axis=1, keepdims=True).clip(1e-12)
            full = np.concatenate([np.argmax(self.matrix[i:i + 8192] @ cent.T, axis=1)
                                   for i in range(0, n, 8192)])
            order = np.argsort(full, kind="stable")
            offsets = np.searchsorted(full[order], np.arange(nlist + 1))
            self.matrix = np.ascontiguousarray(self.matrix[order])
            self.keys = self.keys[order]
            self.docs = self.docs[order]
            self._sorter = np.argsort(self.keys, kind="stable")
            self.ivf = (cent, offsets)

    def search(self, query: Any, k: int, *, mask: Any = None, exact: bool = False) -> list[tuple[int, float]]:
        """``[(chunk key, cosine similarity)]``, best first; rows where ``mask`` is False are skipped."""
        import numpy as np

        if len(self) == 0 or k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if mask is None and not exact and len(self) >= IVF_MIN:
            if self.ivf is None:
                self.build_ivf()
            return self._probe(q, k)
        sims = self.matrix @ q
        if mask is not None:
            sims = np.where(mask, sims, -np.inf)
        k = min(k, len(self))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(int(self.keys[i]), float(sims[i])) for i in top if np.isfinite(sims[i])]

    def _probe(self, q: Any, k: int) -> list[tuple[int, float]]:
        import numpy as np

        assert self.ivf is not None
        cent, offsets = self.ivf
        nprobe = min(len(cent), max(8, round(len(cent) * NPROBE_SHARE)))
        lists = np.argpartition(-(cent @ q), nprobe - 1)[:nprobe]
        rows = [np.arange(offsets[c], offsets[c + 1]) for c in lists if offsets[c + 1] > offsets[c]]
        sims = [self.matrix[offsets[c]:offsets[c + 1]] @ q for c in lists if offsets[c + 1] > offsets[c]]
        if not sims:
            return []
        idx = np.concatenate(rows)
        s = np.concatenate(sims)
        k = min(k, len(s))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [(int(self.keys[idx[i]]), float(s[i])) for i in top]


class IndexCache:
    """A small LRU of :class:`FlatIndex`, one per ``(project, collection)``, newest version only."""

    def __init__(self, max_collections: int = 16) -> None:
        self._max = max_collections
        self._items: OrderedDict[tuple[str, str], FlatIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], version: int) -> FlatIndex | None:
        with self._lock:
            idx = self._items.get(key)
            if idx is None or idx.version != version:
                return None
            self._items.move_to_end(key)
            return idx

    def put(self, key: tuple[str, str], idx: FlatIndex) -> None:
        with self._lock:
            self._items[key] = idx
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)


def pgvector_status(engine: Engine) -> dict[str, Any]:
    """``{"dialect", "available", "installed"}``: whether pgvector can be used on this database."""
    if engine.dialect.name != "postgresql":
        return {"dialect": engine.dialect.name, "available": False, "installed": None}
    with engine.connect() as conn:
        row = conn.execute(text("SELECT default_version, installed_version FROM pg_available_extensions "
                                "WHERE name = 'vector'")).first()
    return {"dialect": "postgresql", "available": row is not None,
            "installed": None if row is None else row.installed_version}


def require_pgvector(engine: Engine) -> None:
    """Raise :class:`ConfigurationError` naming the package to install when pgvector is missing."""
    st = pgvector_status(engine)
    if st["dialect"] != "postgresql":
        raise ConfigurationError("PODIUM_RAG_INDEX=pgvector needs PostgreSQL (PODIUM_DATABASE_URL); on SQLite "
                                 "leave it unset (the built-in flat index)")
    if not st["available"]:
        raise ConfigurationError(PGVECTOR_HINT)

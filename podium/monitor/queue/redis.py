"""The job queue in Redis: one stream per kind with a consumer group (``PODIUM_QUEUE=redis``).

Keys, under ``prefix`` (default ``podium:jobs:``):

- ``s:<kind>``: the stream of jobs (fields ``project_id``, ``payload``, ``enqueued_at``,
  ``base_attempts``); group ``workers``. ``ack`` is ``XACK`` + ``XDEL``, so the stream holds
  only unfinished jobs.
- ``l:<kind>``: a sorted set of leased entries, scored by when their lease runs out. A claim is
  one Lua script (atomic): it takes over entries whose lease ran out (``XCLAIM``: the crash
  recovery), then reads new ones (``XREADGROUP >``), and leases both. The lease set, not
  ``XAUTOCLAIM``'s idle time, decides expiry, so each claim keeps its own ``lease_s`` and two
  claimers never get the same entry.
- ``a:<kind>``: a hash of claims per entry (the attempt count; ``HINCRBY`` at each claim).
- ``d:<kind>``: a sorted set of nacked jobs waiting out their backoff (score: due time);
  ``claim`` moves the due ones back into the stream (whoever removes one re-adds it).
- ``x:<kind>``: a hash of dead jobs (failed ``max_attempts`` times), by job id.
- ``k:<project>:<kind>:<dedup_key>``: ``SET NX`` with a TTL (``dedup_ttl_s``). Unlike the SQL
  queue, a key dedups for its TTL, not until the job is acked.
- ``kinds``: the set of kinds seen, for ``claim(kinds=None)`` and ``stats``.

A job id is ``<kind>/<stream entry id>``; a nacked job comes back with a new entry id.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, cast

import redis

from podium.monitor.queue.base import QueuedJob, QueueStats

__all__ = ["RedisQueue"]

GROUP = "workers"
_MAX_ERROR = 4000

# One claim, atomic: move due nacked jobs back into the stream; take over entries whose lease
# ran out (the lease set decides, so two claimers never both get one); read new entries; lease
# them and count the attempt. KEYS: stream, leases, attempts, delayed.
# ARGV: group, consumer, n, now_ms, lease_until_ms. Returns {{id, {field, value...}, claims}...}.
_CLAIM = """
local n = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now / 1000, 'LIMIT', 0, 500)
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[4], member)
  local f = cjson.decode(member)
  local flat = {}
  for k, v in pairs(f) do table.insert(flat, k); table.insert(flat, tostring(v)) end
  redis.call('XADD', KEYS[1], '*', unpack(flat))
end
local out = {}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, n)
for _, id in ipairs(expired) do
  local r = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)
  if #r > 0 and r[1] and r[1][2] then
    table.insert(out, {r[1][1], r[1][2]})
  else
    redis.call('ZREM', KEYS[2], id)
    redis.call('XACK', KEYS[1], ARGV[1], id)
  end
end
if #out < n then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', n - #out, 'STREAMS', KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      if e[2] then table.insert(out, {e[1], e[2]}) end
    end
  end
end
for _, e in ipairs(out) do
  redis.call('ZADD', KEYS[2], ARGV[5], e[1])
  table.insert(e, redis.call('HINCRBY', KEYS[3], e[1], 1))
end
return out
"""


def _job_id(kind: str, entry: str) -> str:
    return f"{kind}/{entry}"


def _split(job_id: str) -> tuple[str, str]:
    kind, _, entry = job_id.rpartition("/")
    return kind, entry


class RedisQueue:
    """:class:`podium.monitor.queue.base.JobQueue` over Redis streams (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, prefix: str = "podium:jobs:", dedup_ttl_s: float = 3600.0) -> None:
        self.r = client
        self.prefix = prefix
        self.dedup_ttl_s = dedup_ttl_s
        self._groups: set[str] = set()
        self._claim_script = self.r.register_script(_CLAIM)

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> RedisQueue:
        return cls(redis.Redis.from_url(url, decode_responses=True), **kw)

    def close(self) -> None:
        self.r.close()

    # --- keys -----------------------------------------------------------------------------
    def _stream(self, kind: str) -> str:
        return f"{self.prefix}s:{kind}"

    def _attempts(self, kind: str) -> str:
        return f"{self.prefix}a:{kind}"

    def _leases(self, kind: str) -> str:
        return f"{self.prefix}l:{kind}"

    def _delayed(self, kind: str) -> str:
        return f"{self.prefix}d:{kind}"

    def _dead(self, kind: str) -> str:
        return f"{self.prefix}x:{kind}"

    def _kinds_key(self) -> str:
        return f"{self.prefix}kinds"

    def _ensure_group(self, kind: str, *, force: bool = False) -> None:
        if kind in self._groups and not force:
            return
        try:
            self.r.xgroup_create(self._stream(kind), GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add(kind)

    def _kinds(self) -> list[str]:
        return sorted(cast(set[str], self.r.smembers(self._kinds_key())))

    # --- producers ------------------------------------------------------------------------
    def enqueue(self, kind: str, project_id: str, payloads: list[dict[str, Any]], *,
                dedup_keys: list[str] | None = None) -> int:
        if not payloads:
            return 0
        if dedup_keys is not None and len(dedup_keys) != len(payloads):
            raise ValueError(f"dedup_keys has {len(dedup_keys)} keys for {len(payloads)} payloads; pass one per payload")
        keep = list(range(len(payloads)))
        if dedup_keys is not None:
            ttl_ms = max(int(self.dedup_ttl_s * 1000), 1)
            pipe = self.r.pipeline(transaction=False)
            for k in dedup_keys:
                pipe.set(f"{self.prefix}k:{project_id}:{kind}:{k}", "1", nx=True, px=ttl_ms)
            keep = [i for i, ok in enumerate(pipe.execute()) if ok]
        if not keep:
            return 0
        self.r.sadd(self._kinds_key(), kind)
        self._ensure_group(kind)
        now = datetime.now(UTC).isoformat()
        pipe = self.r.pipeline(transaction=False)
        for i in keep:
            pipe.xadd(self._stream(kind), {"project_id": project_id, "payload": json.dumps(payloads[i]),
                                           "enqueued_at": now, "base_attempts": "0"})
        pipe.execute()
        return len(keep)

    # --- consumers ------------------------------------------------------------------------
    def claim(self, worker_id: str, n: int, *, lease_s: float = 60.0,
              kinds: list[str] | None = None) -> list[QueuedJob]:
        if n <= 0:
            return []
        out: list[QueuedJob] = []
        for kind in (kinds if kinds is not None else self._kinds()):
            if len(out) >= n:
                break
            try:
                out.extend(self._claim_kind(kind, worker_id, n - len(out), lease_s))
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                self._ensure_group(kind, force=True)  # the stream was deleted under us: start again
                out.extend(self._claim_kind(kind, worker_id, n - len(out), lease_s))
        return out

    def _claim_kind(self, kind: str, worker_id: str, n: int, lease_s: float) -> list[QueuedJob]:
        self._ensure_group(kind)
        now_ms = int(time.time() * 1000)
        keys = [self._stream(kind), self._leases(kind), self._attempts(kind), self._delayed(kind)]
        rows = cast(list[Any], self._claim_script(keys=keys, args=[GROUP, worker_id, n, now_ms,
                                                                    now_ms + int(lease_s * 1000)]))
        jobs = []
        for eid, flat, claims in rows:
            f = dict(zip(flat[::2], flat[1::2], strict=True))
            jobs.append(QueuedJob(id=_job_id(kind, eid), kind=kind, project_id=f["project_id"],
                                  payload=json.loads(f["payload"]),
                                  attempts=int(f.get("base_attempts", 0)) + int(claims),
                                  enqueued_at=datetime.fromisoformat(f["enqueued_at"])))
        return jobs

    def ack(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        pipe = self.r.pipeline(transaction=False)
        for jid in dict.fromkeys(job_ids):
            kind, eid = _split(jid)
            pipe.xack(self._stream(kind), GROUP, eid)
            pipe.xdel(self._stream(kind), eid)
            pipe.hdel(self._attempts(kind), eid)
            pipe.zrem(self._leases(kind), eid)
        pipe.execute()

    def nack(self, job_ids: list[str], *, error: str = "", delay_s: float = 5.0,
             max_attempts: int = 5) -> None:
        for jid in dict.fromkeys(job_ids):
            kind, eid = _split(jid)
            stream = self._stream(kind)
            found = cast(list[Any], self.r.xrange(stream, eid, eid))
            if not found:
                continue  # acked or nacked already
            fields: dict[str, str] = found[0][1]
            claims = int(cast(str | None, self.r.hget(self._attempts(kind), eid)) or 0)
            attempts = int(fields.get("base_attempts", 0)) + claims
            fields = {**fields, "base_attempts": str(attempts), "last_error": error[:_MAX_ERROR]}
            pipe = self.r.pipeline(transaction=True)
            if attempts >= max_attempts:
                pipe.hset(self._dead(kind), jid, json.dumps({**fields, "failed_at": datetime.now(UTC).isoformat()}))
            else:
                pipe.zadd(self._delayed(kind), {json.dumps(fields): time.time() + max(delay_s, 0.0)})
            pipe.xack(stream, GROUP, eid)
            pipe.xdel(stream, eid)
            pipe.hdel(self._attempts(kind), eid)
            pipe.zrem(self._leases(kind), eid)
            pipe.execute()

    def extend(self, job_ids: list[str], *, lease_s: float = 60.0) -> None:
        """A heartbeat for long work: the leases of these (still leased) jobs run ``lease_s`` from now."""
        until = int((time.time() + lease_s) * 1000)
        pipe = self.r.pipeline(transaction=False)
        for jid in job_ids:
            kind, eid = _split(jid)
            pipe.zadd(self._leases(kind), {eid: until}, xx=True)
        pipe.execute()

    # --- operators ------------------------------------------------------------------------
    def stats(self, project_id: str | None = None) -> QueueStats:
        """Counts per kind. With ``project_id`` the streams are read through (O(backlog))."""
        now = datetime.now(UTC)
        backlog: dict[str, int] = {}
        leased: dict[str, int] = {}
        dead: dict[str, int] = {}
        ages: dict[str, float] = {}
        for kind in self._kinds():
            stream = self._stream(kind)
            if project_id is None:
                pipe = self.r.pipeline(transaction=False)
                pipe.xlen(stream)
                pipe.zcard(self._delayed(kind))
                pipe.hlen(self._dead(kind))
                pipe.xrange(stream, "-", "+", count=1)
                pipe.xpending(stream, GROUP)
                xlen, delayed, ndead, first, pending = pipe.execute(raise_on_error=False)
                if isinstance(pending, Exception):
                    pending = {"pending": 0}
                backlog[kind] = int(xlen) + int(delayed)
                leased[kind] = int(pending["pending"])
                dead[kind] = int(ndead)
                oldest = [datetime.fromisoformat(first[0][1]["enqueued_at"])] if first else []
                oldest += [datetime.fromisoformat(json.loads(m)["enqueued_at"])
                           for m in cast(list[str], self.r.zrange(self._delayed(kind), 0, 99))]
            else:
                rows = [f for _e, f in cast(list[Any], self.r.xrange(stream)) if f.get("project_id") == project_id]
                rows += [f for f in (json.loads(m) for m in cast(list[str], self.r.zrange(self._delayed(kind), 0, -1)))
                         if f.get("project_id") == project_id]
                backlog[kind] = len(rows)
                leased[kind] = 0  # the pending list does not say which project an entry is for
                dead[kind] = sum(1 for v in cast(list[str], self.r.hvals(self._dead(kind)))
                                 if json.loads(v).get("project_id") == project_id)
                oldest = [datetime.fromisoformat(f["enqueued_at"]) for f in rows]
            if oldest:
                ages[kind] = max((now - min(oldest)).total_seconds(), 0.0)
        backlog = {k: v for k, v in backlog.items() if v}
        return QueueStats(backlog=sum(backlog.values()), leased=sum(leased.values()), dead=sum(dead.values()),
                          oldest_age_s=max(ages.values()) if ages else None, by_kind=backlog,
                          leased_by_kind={k: v for k, v in leased.items() if v},
                          dead_by_kind={k: v for k, v in dead.items() if v}, oldest_age_by_kind=ages)

    def purge(self) -> None:
        """Delete every key under the prefix (tests, and resetting a queue)."""
        keys = list(self.r.scan_iter(match=f"{self.prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            self.r.delete(*keys[i : i + 500])
        self._groups.clear()

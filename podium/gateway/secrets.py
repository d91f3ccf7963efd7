"""Provider secrets at rest: Fernet (AES-128-CBC + HMAC) under a key ring, with rotation.

The keys come from ``PODIUM_ENCRYPTION_KEY`` or from ``$PODIUM_HOME/secret.key`` (generated
once, mode 600). Either may hold several keys, separated by commas or new lines: the first
(the *primary*) encrypts, every one of them decrypts (cryptography's ``MultiFernet``), so a new
key can be introduced while the values stored under the old one keep working. Encrypted values
are stored as ``enc:<token>``; the API never returns them (it says ``"api_key": "set"``).

Rotation without downtime (docs/governance.md#secrets):

1. put the new key first and keep the old one after it (``podium secrets add-key`` does it
   for the key file), on every process sharing the database;
2. servers reading the key file pick the change up by themselves (the file is re-read when it
   changes); servers given ``PODIUM_ENCRYPTION_KEY`` are restarted one at a time;
3. ``podium secrets rotate`` re-encrypts every stored secret with the primary, in batches
   (:func:`rotate_secrets`), and records it in the audit log;
4. drop the old key.

Where the secrets live: :data:`SEALED` lists the JSON columns that hold them (an API-declared
gateway alias, and the copy a canary keeps of it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Table

    from podium.store import Store

__all__ = ["SEALED", "RotationReport", "SecretBox", "key_id", "parse_keys", "rotate_secrets", "sealed_values"]

PREFIX = "enc:"
_HOW = ("generate one with `podium secrets new-key` (or python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())')")


def parse_keys(text: str | bytes) -> list[bytes]:
    """The keys in a ``PODIUM_ENCRYPTION_KEY`` value or a key file: separated by commas, spaces
    or new lines, ``#`` comments and blank lines ignored, primary first."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    keys: list[bytes] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        keys.extend(k.strip().encode() for k in line.replace(",", " ").split() if k.strip())
    return keys


def key_id(key: str | bytes) -> str:
    """A short, non-secret name for a key (the first 12 hex digits of its sha256), for logs,
    the audit log and ``podium secrets status``."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw.strip()).hexdigest()[:12]


def _ring(keys: Sequence[bytes], source: str) -> Any:
    from cryptography.fernet import Fernet, MultiFernet

    if not keys:
        raise ConfigurationError(f"{source} holds no encryption key; {_HOW}")
    fernets = []
    for i, k in enumerate(keys):
        try:
            fernets.append(Fernet(k))
        except (ValueError, TypeError):
            raise ConfigurationError(
                f"key {i + 1} of {source} is not a valid Fernet key (32 url-safe base64 bytes); {_HOW}"
            )
    return MultiFernet(fernets)


class SecretBox:
    """Encrypts with the primary key, decrypts with any key of the ring. Built from a key file,
    it re-reads the file when the file changes (a new primary is used by running servers without
    a restart)."""

    def __init__(self, keys: str | bytes | Sequence[str | bytes], *, source: str = "PODIUM_ENCRYPTION_KEY",
                 path: Path | None = None) -> None:
        if isinstance(keys, (str, bytes)):
            ring = parse_keys(keys)
        else:
            ring = [k.encode() if isinstance(k, str) else k for k in keys]
        self._source = source
        self._path = path
        self._stamp = self._file_stamp()
        self._keys = ring
        self._multi = _ring(ring, source)

    @classmethod
    def from_settings(cls, key: str | None, home: Path) -> SecretBox:
        if key:
            return cls(key)
        path = home / "secret.key"
        if path.exists():
            return cls(path.read_bytes(), source=str(path), path=path)
        from cryptography.fernet import Fernet

        new = Fernet.generate_key()
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return cls(path.read_bytes(), source=str(path), path=path)
        with os.fdopen(fd, "wb") as f:
            f.write(new + b"\n")
        return cls(new, source=str(path), path=path)

    # --- the ring ---------------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _current(self) -> Any:
        """The MultiFernet, reloaded first if the key file changed (a stat per call: secrets are
        decrypted when aliases load, not per request). A file that became unreadable or invalid
        keeps the keys already loaded, and says so in the log."""
        if self._path is not None:
            stamp = self._file_stamp()
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                try:
                    ring = parse_keys(self._path.read_bytes())
                    multi = _ring(ring, self._source)
                except (OSError, ConfigurationError) as e:
                    import logging

                    logging.getLogger(__name__).error("kept the loaded encryption keys: %s", e)
                else:
                    self._keys, self._multi = ring, multi
        return self._multi

    @property
    def key_ids(self) -> list[str]:
        """The ring's keys by :func:`key_id`, primary first."""
        self._current()
        return [key_id(k) for k in self._keys]

    # --- values -----------------------------------------------------------------------------------
    def encrypt(self, value: str) -> str:
        return PREFIX + self._current().encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        from cryptography.fernet import InvalidToken

        if not value.startswith(PREFIX):
            return value
        try:
            return str(self._current().decrypt(value[len(PREFIX):].encode()).decode())
        except InvalidToken:
            raise ConfigurationError(
                "a stored provider secret cannot be decrypted with any of this process's encryption keys "
                f"({', '.join(self.key_ids)}); every process sharing the database needs the key it was stored "
                "with: keep the old key after the new one in PODIUM_ENCRYPTION_KEY (or $PODIUM_HOME/secret.key) "
                "until `podium secrets rotate` has run"
            )

    def rotate(self, value: str) -> str:
        """``value`` (``enc:...``) encrypted again with the primary key; ``ConfigurationError``
        when no key of the ring opens it."""
        from cryptography.fernet import InvalidToken

        try:
            return PREFIX + self._current().rotate(value[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise ConfigurationError(
                f"a stored secret cannot be decrypted with any key of the ring ({', '.join(self.key_ids)}): "
                "add the key it was stored with after the primary, then rotate again"
            )

    def opens(self, value: str) -> bool:
        """True when the *primary* key alone decrypts ``value``."""
        return self.which_key(value) == 0

    def which_key(self, value: str) -> int | None:
        """The position in the ring of the first key that decrypts ``value`` (0: the primary),
        or None when none does."""
        from cryptography.fernet import Fernet, InvalidToken

        self._current()
        token = value[len(PREFIX):].encode() if value.startswith(PREFIX) else value.encode()
        for i, k in enumerate(self._keys):
            try:
                Fernet(k).decrypt(token)
            except InvalidToken:
                continue
            return i
        return None


# --- where secrets are stored ---------------------------------------------------------------------
def _deployment_values(spec: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """``(container, key)`` for every sealed value of a stored alias spec: each deployment's
    literal ``api_key`` and its header values (``podium.gateway.config.seal_api_alias``)."""
    if not isinstance(spec, dict):
        return
    for d in spec.get("deployments") or []:
        if not isinstance(d, dict):
            continue
        if isinstance(d.get("api_key"), str) and d["api_key"].startswith(PREFIX):
            yield d, "api_key"
        headers = d.get("headers")
        if isinstance(headers, dict):
            for name, v in headers.items():
                if isinstance(v, str) and v.startswith(PREFIX):
                    yield headers, name


@dataclass(frozen=True)
class Sealed:
    """A JSON column holding sealed values: its table's name, primary key and column."""

    table: str
    key: tuple[str, ...]
    column: str


SEALED: tuple[Sealed, ...] = (
    Sealed("gateway_model", ("project_id", "name"), "spec"),
    Sealed("canary", ("project_id", "id"), "original_spec"),
)


def sealed_values(store: Store) -> Iterator[tuple[str, str]]:
    """``(where, value)`` for every sealed value in the database (``where`` names the table and
    row); for checks and tests."""
    from sqlalchemy import select

    from podium.store import tables as t

    with store.engine.connect() as conn:
        for s in SEALED:
            table: Table = getattr(t, s.table)
            cols = [table.c[k] for k in s.key]
            for row in conn.execute(select(*cols, table.c[s.column])):
                where = f"{s.table}:" + "/".join(str(v) for v in row[:-1])
                for container, k in _deployment_values(row[-1]):
                    yield where, container[k]


@dataclass
class RotationReport:
    """What :func:`rotate_secrets` did: rows read and rewritten, values re-encrypted, batches,
    and the rows it could not rewrite (a concurrent change it could not catch up with, or a
    value no key opens)."""

    primary: str
    rows_scanned: int = 0
    rows_rewritten: int = 0
    values: int = 0
    batches: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"primary": self.primary, "rows_scanned": self.rows_scanned, "rows_rewritten": self.rows_rewritten,
                "values": self.values, "batches": self.batches, "failed": list(self.failed)}


def _rotated(spec: Any, box: SecretBox) -> tuple[Any, int]:
    """A copy of ``spec`` with every sealed value under the primary key, and how many changed."""
    import copy

    out = copy.deepcopy(spec)
    n = 0
    for container, k in _deployment_values(out):
        if box.opens(container[k]):
            continue  # already under the primary: a second run (or a value written since) is a no-op
        container[k] = box.rotate(container[k])
        n += 1
    return out, n


def rotate_secrets(store: Store, box: SecretBox, *, batch_size: int = 200,
                   on_batch: Callable[[RotationReport], None] | None = None) -> RotationReport:
    """Re-encrypt every stored secret with ``box``'s primary key, ``batch_size`` rows per short
    transaction (keyset pagination: no long lock, readers see either the old or the new token,
    and both decrypt while the old key is in the ring). A row changed by someone else between
    the read and the write (its ``updated_at`` moved) is read again, up to three times.
    Idempotent: values already under the primary are left as they are."""
    from sqlalchemy import and_, select, tuple_, update

    from podium.store import tables as t

    report = RotationReport(primary=box.key_ids[0])
    for s in SEALED:
        table: Table = getattr(t, s.table)
        keys = [table.c[k] for k in s.key]
        after: tuple[Any, ...] | None = None
        while True:
            q = select(*keys, table.c[s.column], table.c.updated_at).order_by(*keys).limit(batch_size)
            if after is not None:
                q = q.where(tuple_(*keys) > tuple_(*after))
            with store.engine.begin() as conn:
                rows = conn.execute(q).all()
                for row in rows:
                    ident = tuple(row[: len(keys)])
                    spec, stamp = row[len(keys)], row[len(keys) + 1]
                    report.rows_scanned += 1
                    where = and_(*(c == v for c, v in zip(keys, ident, strict=True)))
                    for _attempt in range(3):
                        try:
                            new, n = _rotated(spec, box)
                        except ConfigurationError:
                            report.failed.append(f"{s.table}:{'/'.join(map(str, ident))} (no key opens it)")
                            break
                        if n == 0:
                            break
                        res = conn.execute(update(table).where(where, table.c.updated_at == stamp)
                                           .values({s.column: new}))
                        if res.rowcount == 1:
                            report.rows_rewritten += 1
                            report.values += n
                            break
                        fresh = conn.execute(select(table.c[s.column], table.c.updated_at).where(where)).first()
                        if fresh is None:  # deleted meanwhile: nothing left to rotate
                            break
                        spec, stamp = fresh[0], fresh[1]
                    else:
                        report.failed.append(f"{s.table}:{'/'.join(map(str, ident))} (changed during rotation)")
            if not rows:
                break
            report.batches += 1
            after = tuple(rows[-1][: len(keys)])
            if on_batch is not None:
                on_batch(report)
            if len(rows) < batch_size:
                break
    return report

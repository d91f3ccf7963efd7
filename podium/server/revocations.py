"""Key revocations across processes: with Redis configured, a process that revokes or changes
a key publishes on one channel; every process subscribes and drops its key cache at once.
(Without Redis, and for the CLI, which writes the database directly, the revocation marker
that :class:`~podium.server.auth.Authenticator` polls every 0.5 s covers it.)"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

__all__ = ["CHANNEL", "RevocationBus"]

logger = logging.getLogger("podium.server")

CHANNEL = "podium:keys:invalidate"


class RevocationBus:
    def __init__(self, redis_url: str, on_message: Any) -> None:
        import redis  # the `server` extra

        self._redis = redis.Redis.from_url(redis_url)
        self._on_message = on_message
        self._id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def publish(self) -> None:
        self._redis.publish(CHANNEL, self._id)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="podium-revocations", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                self._ready.set()
                # Resubscribed after an outage: anything may have been revoked meanwhile.
                self._on_message()
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.2)
                    if msg is not None and msg.get("type") == "message" and msg.get("data") != self._id.encode():
                        self._on_message()
            except Exception:
                logger.warning("key revocation channel: Redis unavailable; retrying", exc_info=True)
                self._stop.wait(1.0)
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self._redis.close()
        except Exception:
            pass

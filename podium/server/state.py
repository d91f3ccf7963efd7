"""Everything a request handler needs, built once by create_app."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from podium.config import Settings
from podium.core.pricing import ModelPrice, PriceTable
from podium.core.ttlcache import TTLCache
from podium.gateway.service import Gateway
from podium.server.auth import Authenticator
from podium.server.ingest import Ingester
from podium.store import Store

__all__ = ["AppState"]

logger = logging.getLogger("podium.server")


@dataclass
class AppState:
    settings: Settings
    store: Store
    ingester: Ingester
    auth: Authenticator
    gateway: Gateway | None = None
    price_ttl: float = 30.0
    _prices: TTLCache[PriceTable] | None = None
    _bus: Any = None
    accepted: int = 0
    rejected: int = 0

    def __post_init__(self) -> None:
        self._prices = TTLCache(self.price_ttl, max_entries=10_000)

    def _load_prices(self, project_id: str) -> PriceTable:
        overrides = {
            r["model"]: ModelPrice(
                input_per_million=r["input_per_million"],
                output_per_million=r["output_per_million"],
                cached_input_per_million=r["cached_input_per_million"],
            )
            for r in self.store.prices.list(project_id)
        }
        return PriceTable.default().with_overrides(overrides) if overrides else PriceTable.default()

    def prices_for(self, project_id: str) -> PriceTable:
        """The project's price table (cached ``price_ttl`` s); loads synchronously on a miss,
        so event-loop code awaits :meth:`aprices_for` first."""
        return self._prices.load(project_id, lambda: self._load_prices(project_id))  # type: ignore[union-attr,return-value]

    async def aprices_for(self, project_id: str) -> PriceTable:
        """Same, for the event loop: a miss loads in a worker thread."""
        return await self._prices.get_or_load(project_id, lambda: self._load_prices(project_id))  # type: ignore[union-attr,return-value]

    def invalidate_prices(self, project_id: str) -> None:
        self._prices.invalidate(project_id)  # type: ignore[union-attr]

    # --- cross-process key revocation (Redis pub/sub) -------------------------------------------------
    def start(self) -> None:
        """Start what runs beside the requests: with Redis, the key revocation channel."""
        if self.settings.redis_url and self._bus is None:
            from podium.server.revocations import RevocationBus

            self._bus = RevocationBus(self.settings.redis_url, lambda: self.auth.invalidate(broadcast=False))
            self._bus.start()
            self.auth.on_revoke.append(self._bus.publish)

    def stop(self) -> None:
        if self._bus is not None:
            if self._bus.publish in self.auth.on_revoke:
                self.auth.on_revoke.remove(self._bus.publish)
            self._bus.stop()
            self._bus = None

    def count_ingest(self, accepted: int, rejected: int) -> None:
        self.accepted += accepted
        self.rejected += rejected
        if rejected:
            logger.warning("ingest: %d items stored, %d rejected (see the response's errors)", accepted, rejected)
        else:
            logger.info("ingest: %d items stored", accepted)

"""Everything a request handler needs, built once by create_app."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from podium.config import Settings
from podium.core.pricing import ModelPrice, PriceTable
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
    _prices: dict[str, tuple[PriceTable, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: int = 0
    rejected: int = 0

    def prices_for(self, project_id: str) -> PriceTable:
        now = time.monotonic()
        hit = self._prices.get(project_id)
        if hit and hit[1] > now:
            return hit[0]
        overrides = {
            r["model"]: ModelPrice(
                input_per_million=r["input_per_million"],
                output_per_million=r["output_per_million"],
                cached_input_per_million=r["cached_input_per_million"],
            )
            for r in self.store.prices.list(project_id)
        }
        table = PriceTable.default().with_overrides(overrides) if overrides else PriceTable.default()
        with self._lock:
            self._prices[project_id] = (table, now + self.price_ttl)
        return table

    def invalidate_prices(self, project_id: str) -> None:
        with self._lock:
            self._prices.pop(project_id, None)

    def count_ingest(self, accepted: int, rejected: int) -> None:
        self.accepted += accepted
        self.rejected += rejected
        if rejected:
            logger.warning("ingest: %d items stored, %d rejected (see the response's errors)", accepted, rejected)
        else:
            logger.info("ingest: %d items stored", accepted)

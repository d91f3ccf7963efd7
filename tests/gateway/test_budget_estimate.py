"""The budget reservation's inputs, where mypy once read ``int * None`` and ``float`` for ``Decimal``.

Neither was a bug at run time (``n`` was checked before it was multiplied; ``ModelPrice`` turns a float
into the ``Decimal`` of its repr): these tests pin that behaviour now that the types say so.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from podium.config import Settings
from podium.core.pricing import ModelPrice
from podium.gateway.config import GatewayConfig, GatewayFile
from podium.gateway.limits import MemoryLimiter
from podium.gateway.service import Gateway, _choices
from tests.gateway.budget_shapes import MSG, price_table

MAX_OUT = 600


@pytest.mark.parametrize(("n", "expected"), [
    (3, 3), (1, 1), (None, 1), (0, 1), (-2, 1), ("2", 1), (2.0, 1), ("absent", 1),
])
def test_choices_is_a_positive_int_or_one(n: Any, expected: int) -> None:
    body: dict[str, Any] = {"model": "m"} if n == "absent" else {"model": "m", "n": n}
    assert _choices(body) == expected


async def test_the_reservation_scales_with_n_and_prices_unpriced_models_exactly(store: Any) -> None:
    s = Settings(gateway_cache="off", gateway_budget_max_output=MAX_OUT,
                 gateway_budget_unpriced_input=0.1, gateway_budget_unpriced_output=0.3)
    dep = {"provider": "openai", "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-fake"}
    cfg = GatewayConfig.from_specs(GatewayFile.model_validate({"models": [
        {"name": "dear", "deployments": [{**dep, "model": "bud-dear"}]},
        {"name": "mystery", "deployments": [{**dep, "model": "bud-mystery-model"}]},
    ]}))
    table = price_table()
    gw = Gateway(s, store, sink=lambda _p, _s: True, prices=lambda _p: table, limiter=MemoryLimiter(),
                 cache=False, config=cfg)
    await gw.start()
    try:
        p = store.projects.create_project("estimate")
        key = store.projects.create_key(p.id, role="gateway").key

        def reserve(alias: str, **extra: Any) -> tuple[int, float, int | None]:
            call = gw.prepare(key, "chat", {"model": alias, "messages": MSG, **extra}, {})
            tokens, usd = gw._estimate(call, True)
            return tokens, usd, call.max_out

        dear = table.lookup("bud-dear", "openai")
        assert dear is not None
        t1, one, max1 = reserve("dear")
        t3, three, max3 = reserve("dear", n=3)
        assert max1 is None and max3 is None  # no max_tokens: bounded by gateway_budget_max_output x n
        n_in = t1 - 512
        assert t3 == n_in + 3 * 512
        assert one == pytest.approx(dear.max_cost(n_in, MAX_OUT))
        assert three == pytest.approx(dear.max_cost(n_in, 3 * MAX_OUT))
        assert reserve("dear", n=None)[1] == one  # n: null is one answer
        assert reserve("dear", max_tokens=50, n=2)[2] == 100

        unpriced = gw._unpriced_price()
        assert unpriced == ModelPrice(0.1, 0.3)  # the float form it replaced
        assert unpriced.input_per_million == Decimal("0.1") and unpriced.output_per_million == Decimal("0.3")
        _, usd, _ = reserve("mystery", max_tokens=1000)
        assert usd == pytest.approx((n_in * 0.1 + 1000 * 0.3) / 1e6)
    finally:
        await gw.aclose()

"""What a budget reserves: a model's context window / max output and its worst-case cost."""

from __future__ import annotations

import pytest

from podium.core.pricing import ModelPrice, PriceTable


def test_context_and_max_output_are_read_and_written() -> None:
    p = ModelPrice.from_dict({"input": 1, "output": 2, "context": 8192, "max_output": 1024}, model="m")
    assert (p.context_window, p.max_output) == (8192, 1024)
    assert p.to_dict() == {"input": "1", "output": "2", "context": 8192, "max_output": 1024}
    assert p == ModelPrice(1, 2)  # not part of the price
    t = PriceTable.from_dict({"providers": {"x": {"models": {"m": {"input": 1, "output": 2, "context": 100}}}}})
    found = t.lookup("m")
    assert found is not None and found.context_window == 100 and found.max_output is None
    with pytest.raises(ValueError, match="context_window must be a whole number"):
        ModelPrice.from_dict({"input": 1, "output": 2, "context": 0})


def test_output_bound_without_max_tokens() -> None:
    assert ModelPrice(1, 2).output_bound(500, 4096) == 4096  # nothing known: the cap
    assert ModelPrice(1, 2, max_output=1000).output_bound(500, 4096) == 1000
    assert ModelPrice(1, 2, context_window=2048).output_bound(500, 4096) == 1548
    assert ModelPrice(1, 2, context_window=2048, max_output=1000).output_bound(1500, 4096) == 548
    assert ModelPrice(1, 2, context_window=100).output_bound(500, 4096) == 1  # prompt too long: still >= 1


def test_max_cost_ignores_cache_discounts_and_follows_tiers() -> None:
    p = ModelPrice(2, 10, cached_input_per_million="0.2", cache_write_per_million="2.5",
                   tiers=((1000, ModelPrice(4, 20)),))
    assert p.max_cost(100, 50) == pytest.approx((100 * 2.5 + 50 * 10) / 1e6)  # cache writes are the dearest input
    assert p.max_cost(2000, 50) == pytest.approx((2000 * 4 + 50 * 20) / 1e6)  # the long-context tier

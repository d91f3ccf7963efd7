"""Budget overspend under concurrency, one routing shape at a time (tests and bench).

Every shape is an alias of a gateway config whose upstream is the real fake upstream
(``tests/gateway/fake_upstream.py``), which answers every request with ``WORDS`` output
tokens and ``PROMPT_TOKENS`` prompt tokens: each request spends what its output bound
allows, the worst case a budget has to survive.

=================  =====================================================================
shape              what the request can reach
=================  =====================================================================
``single``         one deployment (``bud-mid``, $3 / $15 per 1M)
``weighted``       ``bud-cheap`` (weight 9, $0.5 / $1) or ``bud-dear`` (weight 1, $10 / $60)
``fallback``       ``bud-down`` (cheap, refuses connections) then the fallback ``bud-dear``
``unpriced``       a model with no price (budgets charge PODIUM_GATEWAY_BUDGET_UNPRICED_*)
``no_max_tokens``  ``bud-dear`` without ``max_tokens`` (bounded by PODIUM_GATEWAY_BUDGET_MAX_OUTPUT)
=================  =====================================================================

:func:`run_shape` sends ``n`` concurrent requests through a :class:`Gateway` (in this
process) against one key whose ``budget_total`` is ``budget``; ``limits_worker.py gateway``
does the same in another OS process, so several processes can share one Redis.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from podium.config import Settings
from podium.core.pricing import ModelPrice, PriceTable, compute_cost
from podium.errors import TooManyRequests
from podium.gateway.config import GatewayConfig, GatewayFile
from podium.gateway.limits import Limiter
from podium.gateway.service import Gateway
from podium.store import Store

SHAPES = ("single", "weighted", "fallback", "unpriced", "no_max_tokens")
# output tokens of every answer = max_tokens of the requests = the no-max_tokens bound (more than
# the 512 the gateway used to assume when max_tokens was absent)
WORDS = 600
PROMPT_TOKENS = 10
MSG = [{"role": "user", "content": "hello there, how are you doing today?"}]
TEXT = " ".join(["tok"] * WORDS)
PRICES: dict[str, dict[str, Any]] = {
    "bud-mid": {"input": 3, "output": 15},
    "bud-cheap": {"input": 0.5, "output": 1},
    "bud-dear": {"input": 10, "output": 60},
    "bud-down": {"input": 0.5, "output": 1},
}
ALIAS = {s: f"bud-{s.replace('_', '-')}" for s in SHAPES}


def price_table() -> PriceTable:
    return PriceTable.default().with_overrides(PRICES)


def closed_port() -> int:
    """A port nobody listens on (connections are refused): a deployment that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_file(base_url: str, down_port: int) -> dict[str, Any]:
    def dep(model: str, **kw: Any) -> dict[str, Any]:
        return {"provider": "openai", "model": model, "api_base": base_url, "api_key": "sk-fake", **kw}

    down = f"http://127.0.0.1:{down_port}/v1"
    return {
        "router": {"retries": 0, "backoff": 0.01, "cooldown": 0, "allowed_fails": 1000, "timeout": 10},
        "models": [
            {"name": ALIAS["single"], "deployments": [dep("bud-mid")]},
            {"name": ALIAS["weighted"], "deployments": [dep("bud-cheap", weight=9), dep("bud-dear", weight=1)]},
            {"name": ALIAS["fallback"], "deployments": [{**dep("bud-down"), "api_base": down}],
             "fallbacks": ["bud-dear-only"]},
            {"name": "bud-dear-only", "deployments": [dep("bud-dear")]},
            {"name": ALIAS["unpriced"], "deployments": [dep("bud-mystery-model")]},
            {"name": ALIAS["no_max_tokens"], "deployments": [dep("bud-dear")]},
        ],
    }


def settings() -> Settings:
    return Settings(gateway_cache="off", gateway_budget_max_output=WORDS)


class LegacyGateway(Gateway):
    """The reservation rule before issue 10 (for the benchmark's comparison only): priced on
    the alias's first deployment, 512 output tokens when max_tokens is absent, unpriced
    models free (reserved and settled at $0), no top-up before a fallback."""

    def _estimate(self, call: Any, budgeted: bool) -> tuple[int, float]:
        tokens, _ = super()._estimate(call, False)
        dep = call.chain[0].deployments[0]
        n = call.body.get("n") or 1
        n_out = call.max_out if call.max_out is not None else 512 * n
        cost = compute_cost(dep.model, {"input_tokens": call.est_in, "output_tokens": n_out},
                            provider=dep.provider, table=self._prices(call.key.project_id))
        return tokens, (cost or {}).get("total", 0.0)

    def _unpriced_price(self) -> ModelPrice:
        return ModelPrice(0, 0)


def make_gateway(store: Store, limiter: Limiter, base_url: str, down_port: int, *, legacy: bool = False) -> Gateway:
    cfg = GatewayConfig.from_specs(GatewayFile.model_validate(gateway_file(base_url, down_port)))
    table = price_table()
    cls = LegacyGateway if legacy else Gateway
    return cls(settings(), store, sink=lambda _pid, _span: True, prices=lambda _pid: table,
               limiter=limiter, cache=False, config=cfg)


def body(shape: str) -> dict[str, Any]:
    b: dict[str, Any] = {"model": ALIAS[shape], "messages": MSG}
    if shape != "no_max_tokens":
        b["max_tokens"] = WORDS
    return b


def estimate(gw: Gateway, shape: str, secret_key: str) -> float:
    """What one request of this shape reserves (the most it can cost on any deployment it reaches)."""
    key = gw.store.projects.authenticate(secret_key)
    assert key is not None
    call = gw.prepare(key, "chat", body(shape), {})
    return gw._estimate(call, True)[1]


def actual_costs(shape: str) -> dict[str, float]:
    """USD one answer costs on each deployment the shape can land on."""
    s = settings()
    t = price_table()
    out: dict[str, float] = {}
    models = {"single": ["bud-mid"], "weighted": ["bud-cheap", "bud-dear"], "fallback": ["bud-dear"],
              "unpriced": [], "no_max_tokens": ["bud-dear"]}[shape]
    for m in models:
        p = t.lookup(m, "openai")
        assert p is not None
        out[m] = p.max_cost(PROMPT_TOKENS, WORDS)
    if shape == "unpriced":
        out["bud-mystery-model"] = (PROMPT_TOKENS * s.gateway_budget_unpriced_input
                                    + WORDS * s.gateway_budget_unpriced_output) / 1e6
    return out


async def run_shape(gw: Gateway, shape: str, secret_key: str, n: int) -> dict[str, int]:
    """``n`` concurrent chat calls; counts answers, budget refusals and anything else."""
    key = gw.store.projects.authenticate(secret_key)
    assert key is not None

    async def one() -> str:
        try:
            call = gw.prepare(key, "chat", body(shape), {})
            await gw.call(call)
        except TooManyRequests as e:
            return "denied" if str(e.details[0].get("limit", "")).startswith("budget") else f"429 {e.message}"
        except Exception as e:  # reported, and the test fails on it
            return f"{type(e).__name__}: {e}"
        return "ok"

    results = await asyncio.gather(*(one() for _ in range(n)))
    out = {"ok": results.count("ok"), "denied": results.count("denied")}
    other = [r for r in results if r not in ("ok", "denied")]
    if other:
        out["errors"] = len(other)
        out["first_error"] = other[0]  # type: ignore[assignment]
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)

"""Price table: loading, name matching, overrides, and the cost of a usage record."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from importlib import resources

import pytest

from podium.core.pricing import ModelPrice, PriceTable, compute_cost
from podium.core.records import UsageIn


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.default()


# --- the bundled table -------------------------------------------------------------------


def test_prices_json_is_package_data_with_a_date_and_sources() -> None:
    ref = resources.files("podium.core").joinpath("prices.json")
    assert ref.is_file()
    data = json.loads(ref.read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["updated"])
    for name, block in data["providers"].items():
        assert block["source"], f"provider {name} needs a source note"
        for model, entry in block["models"].items():
            assert model == model.lower(), model
            assert {"input", "output"} <= entry.keys(), model


def test_default_table_loads_once(table: PriceTable) -> None:
    assert PriceTable.default() is table
    assert table.updated is not None
    assert len(table) > 100
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "gpt-5", "claude-sonnet-4-5", "gemini-2.5-flash"):
        assert name in table


def test_importing_pricing_reads_nothing() -> None:
    code = (
        "import podium.core.pricing as p, sys; "
        "assert p.PriceTable._default is None; assert 'tiktoken' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --- ModelPrice --------------------------------------------------------------------------


def test_model_price_converts_numbers_to_exact_decimals() -> None:
    p = ModelPrice(0.1, 2, "0.025")
    assert p.input_per_million == Decimal("0.1")
    assert p.output_per_million == Decimal(2)
    assert p.cached_input_per_million == Decimal("0.025")
    assert p.cache_write_per_million is None
    assert ModelPrice(1, 2) == ModelPrice(Decimal(1), Decimal(2), model="something")  # model not compared


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "abc", None])
def test_model_price_rejects_bad_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        ModelPrice(bad, 1)  # type: ignore[arg-type]


def test_model_price_dict_round_trip() -> None:
    p = ModelPrice.from_dict(
        {"input": 3, "output": 15, "cached_input": 0.3, "tiers": [{"above_input_tokens": 200000, "input": 6}]}
    )
    assert ModelPrice.from_dict(p.to_dict()) == p
    assert p.for_prompt(200_000) is p
    assert p.for_prompt(200_001).input_per_million == 6
    assert ModelPrice.from_dict(
        {"input_per_million": "1.5", "output_per_million": 2}
    ).input_per_million == Decimal("1.5")
    with pytest.raises(ValueError):
        ModelPrice.from_dict({"output": 1})


# --- matching ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        # exact, case-insensitive
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("  gpt-4o-mini ", "gpt-4o-mini"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # an exact dated entry beats normalizing
        ("claude-sonnet-4-0", "claude-sonnet-4"),  # alias
        # provider prefixes
        ("openai/gpt-4o", "gpt-4o"),
        ("anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "meta-llama-3.1-8b-instruct-turbo"),
        # date / version suffixes
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-1.5-flash@001", "gemini-1.5-flash"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-small-2506", "mistral-small"),
        ("o3-mini-2025-01-31", "o3-mini"),
        # cloud spellings
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("claude-opus-4.5", "claude-opus-4-5"),
        # longest known prefix
        ("gpt-4o-mini-search-preview", "gpt-4o-mini"),
        ("gpt-4o-search-preview", "gpt-4o"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("gemini-3-pro-preview", "gemini-3-pro"),
        ("gpt-5-chat-latest", "gpt-5"),
        ("gpt-5.1-codex", "gpt-5.1"),
        ("o1-preview", "o1"),
        ("smollm2-135m-instruct", "smollm2"),
        ("HuggingFaceTB/SmolLM2-360M-Instruct", "smollm2"),
        ("gemma3:1b", "gemma3"),
        ("local-embed", "local-embed"),
    ],
)
def test_lookup_matches(table: PriceTable, model: str, entry: str) -> None:
    price = table.lookup(model)
    assert price is not None, model
    assert price.model == entry


def test_dated_mini_is_not_priced_as_gpt_4o(table: PriceTable) -> None:
    mini = table.lookup("gpt-4o-mini-2024-07-18")
    assert mini is not None and mini.input_per_million == Decimal("0.15")
    assert mini != table.lookup("gpt-4o")


@pytest.mark.parametrize(
    "model",
    [
        "totally-unknown-model",
        "claude-opus-4-9",  # a newer minor version is not the old price
        "gpt-4.7",  # gpt-4 followed by a version, not gpt-4's price
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",  # fine-tuned models are priced differently
        "gpt-4ox",  # a known name must end at a separator
        "",
    ],
)
def test_unknown_models(table: PriceTable, model: str) -> None:
    assert table.lookup(model) is None
    assert compute_cost(model, {"input_tokens": 10, "output_tokens": 10}, table=table) is None


@pytest.mark.parametrize("provider", ["local", "LOCAL", "ollama"])
def test_local_provider_is_free(table: PriceTable, provider: str) -> None:
    price = table.lookup("llama3.2:3b", provider)
    assert price == ModelPrice.zero()
    # even a model with a cloud price, when it runs locally
    assert table.lookup("gpt-4o", provider) == ModelPrice.zero()
    cost = compute_cost(
        "anything", {"input_tokens": 1000, "output_tokens": 1000}, provider=provider, table=table
    )
    assert cost == {"input": 0.0, "output": 0.0, "total": 0.0}


def test_local_models_are_free_without_a_provider(table: PriceTable) -> None:
    for model in ("local", "local-embed", "smollm2-135m-instruct", "gemma3:270m"):
        assert compute_cost(model, {"input_tokens": 5, "output_tokens": 5}, table=table) == {
            "input": 0.0,
            "output": 0.0,
            "total": 0.0,
        }


def test_provider_qualified_entries() -> None:
    t = PriceTable({"my-model": ModelPrice(1, 1), "groq/my-model": ModelPrice(2, 2)})
    assert t.lookup("my-model").input_per_million == 1  # type: ignore[union-attr]
    assert t.lookup("my-model", "groq").input_per_million == 2  # type: ignore[union-attr]
    assert t.lookup("my-model", "together").input_per_million == 1  # type: ignore[union-attr]


def test_duplicate_names_are_rejected() -> None:
    data = {
        "providers": {
            "a": {"source": "x", "models": {"m": {"input": 1, "output": 1}}},
            "b": {"source": "y", "models": {"n": {"input": 1, "output": 1, "aliases": ["M"]}}},
        }
    }
    with pytest.raises(ValueError, match="listed twice"):
        PriceTable.from_dict(data)


# --- overrides ---------------------------------------------------------------------------


def test_overrides_win_and_leave_the_base_table_alone(table: PriceTable) -> None:
    mine = table.with_overrides(
        {"GPT-4o": ModelPrice(1, 2), "my-azure-deployment": {"input": 3, "output": 4}}
    )
    assert mine.lookup("gpt-4o") == ModelPrice(1, 2)
    assert mine.lookup("gpt-4o").model == "gpt-4o"  # type: ignore[union-attr]
    assert mine.lookup("my-azure-deployment") == ModelPrice(3, 4)
    # an override also prices the names that normalize to it...
    assert mine.lookup("openai/gpt-4o-2024-08-06") == ModelPrice(1, 2)
    # ...but not a more specific built-in entry, nor a different model
    assert mine.lookup("gpt-4o-2024-05-13") == table.lookup("gpt-4o-2024-05-13")
    assert mine.lookup("gpt-4o-mini") == table.lookup("gpt-4o-mini")
    # the default table is untouched
    assert table.lookup("gpt-4o").input_per_million == Decimal("2.5")  # type: ignore[union-attr]
    assert table.lookup("my-azure-deployment") is None
    assert compute_cost("gpt-4o", {"input_tokens": 1_000_000, "output_tokens": 0}, table=mine) == {
        "input": 1.0,
        "output": 0.0,
        "total": 1.0,
    }


def test_overrides_stack_and_beat_zero_cost_providers(table: PriceTable) -> None:
    one = table.with_overrides({"gemma3:27b": ModelPrice("0.05", "0.05")})
    two = one.with_overrides({"gpt-4o": ModelPrice(1, 1)})
    assert two.lookup("gemma3:27b", "ollama") == ModelPrice("0.05", "0.05")  # someone pays for the GPU
    assert two.lookup("gemma3:1b", "ollama") == ModelPrice.zero()
    assert two.lookup("gpt-4o") == ModelPrice(1, 1)
    assert one.lookup("gpt-4o") == table.lookup("gpt-4o")
    replaced = two.with_overrides({"gpt-4o": ModelPrice(9, 9)})
    assert replaced.lookup("gpt-4o") == ModelPrice(9, 9)


def test_provider_qualified_override() -> None:
    t = PriceTable.default().with_overrides({"azure/gpt-4o": ModelPrice(3, 11)})
    assert t.lookup("gpt-4o", "azure") == ModelPrice(3, 11)
    assert t.lookup("gpt-4o", "openai") == PriceTable.default().lookup("gpt-4o")


# --- compute_cost ------------------------------------------------------------------------


def test_cost_of_plain_usage(table: PriceTable) -> None:
    cost = compute_cost("gpt-4o", {"input_tokens": 1000, "output_tokens": 500}, table=table)
    assert cost == {"input": 0.0025, "output": 0.005, "total": 0.0075}
    # the default table is used when none is given
    assert compute_cost("gpt-4o", {"input_tokens": 1000, "output_tokens": 500}) == cost


def test_cost_is_exact_for_tiny_amounts(table: PriceTable) -> None:
    cost = compute_cost("gpt-4o-mini", {"input_tokens": 3, "output_tokens": 7}, table=table)
    assert cost is not None
    assert cost["input"] == 4.5e-07  # 3 * 0.15 / 1e6, no float drift
    assert cost["output"] == 4.2e-06
    assert cost["total"] == float(Decimal("0.00000045") + Decimal("0.0000042"))


def test_cost_accepts_openai_names_and_usage_records(table: PriceTable) -> None:
    a = compute_cost("gpt-4.1", {"prompt_tokens": 100, "completion_tokens": 10}, table=table)
    b = compute_cost("gpt-4.1", UsageIn(input_tokens=100, output_tokens=10), table=table)
    assert a == b == {"input": 0.0002, "output": 0.00008, "total": 0.00028}


def test_cost_with_only_one_side(table: PriceTable) -> None:
    assert compute_cost("text-embedding-3-small", {"input_tokens": 1_000_000}, table=table) == {
        "input": 0.02,
        "output": 0.0,
        "total": 0.02,
    }
    assert compute_cost("gpt-4o", {"output_tokens": 100}, table=table) == {
        "input": 0.0,
        "output": 0.001,
        "total": 0.001,
    }


@pytest.mark.parametrize("usage", [None, {}, {"total_tokens": 100}, {"details": {"cached_tokens": 5}}])
def test_missing_usage_gives_none(table: PriceTable, usage: dict | None) -> None:
    assert compute_cost("gpt-4o", usage, table=table) is None


def test_missing_model_gives_none(table: PriceTable) -> None:
    assert compute_cost(None, {"input_tokens": 1}, table=table) is None


def test_cached_tokens_openai_style(table: PriceTable) -> None:
    # input_tokens includes the 800 cached ones: 200 at 2.50, 800 at 1.25
    cost = compute_cost(
        "gpt-4o", {"input_tokens": 1000, "output_tokens": 0, "details": {"cached_tokens": 800}}, table=table
    )
    assert cost == {"input": 0.0015, "output": 0.0, "total": 0.0015}


def test_cache_reads_and_writes_anthropic_style(table: PriceTable) -> None:
    # Anthropic's API reports input_tokens without the cache: counts larger than it are added
    usage = {
        "input_tokens": 10,
        "output_tokens": 100,
        "details": {"cache_read_input_tokens": 10_000, "cache_creation_input_tokens": 2_000},
    }
    cost = compute_cost("claude-sonnet-4-5-20250929", usage, table=table)
    expected_in = (10 * Decimal(3) + 10_000 * Decimal("0.3") + 2_000 * Decimal("3.75")) / 1_000_000
    assert cost == {
        "input": float(expected_in),
        "output": 0.0015,
        "total": float(expected_in + Decimal("0.0015")),
    }
    # the same prompt reported the OpenTelemetry way (input includes the cache) costs the same
    usage_otel = {**usage, "input_tokens": 12_010}
    assert compute_cost("claude-sonnet-4-5", usage_otel, table=table) == cost


def test_cached_tokens_without_a_cached_price_are_input() -> None:
    t = PriceTable({"m": ModelPrice(2, 4)})
    usage = {"input_tokens": 1000, "output_tokens": 0, "details": {"cached_tokens": 500}}
    assert compute_cost("m", usage, table=t) == {"input": 0.002, "output": 0.0, "total": 0.002}


def test_long_context_tier(table: PriceTable) -> None:
    short = compute_cost("gemini-2.5-pro", {"input_tokens": 200_000, "output_tokens": 1000}, table=table)
    long = compute_cost("gemini-2.5-pro", {"input_tokens": 200_001, "output_tokens": 1000}, table=table)
    assert short == {"input": 0.25, "output": 0.01, "total": 0.26}
    assert long is not None
    assert long["input"] == float(Decimal(200_001) * Decimal("2.5") / 1_000_000)
    assert long["output"] == 0.015


def test_langfuse_cache_keys_are_beside_input(table: PriceTable) -> None:
    # Langfuse usage_details: "input" excludes the cached tokens, each key is its own bucket
    usage = {"input_tokens": 200, "output_tokens": 0, "details": {"input_cached_tokens": 800}}
    assert compute_cost("gpt-4o", usage, table=table) == {"input": 0.0015, "output": 0.0, "total": 0.0015}
    usage = {
        "input_tokens": 100,
        "details": {
            "input_cache_creation_5m": 1000,
            "input_cache_creation_1h": 1000,
            "input_cache_read": 100,
        },
    }
    expected = (100 * Decimal(1) + 2000 * Decimal("1.25") + 100 * Decimal("0.1")) / 1_000_000
    assert compute_cost("claude-haiku-4-5", usage, table=table) == {
        "input": float(expected),
        "output": 0.0,
        "total": float(expected),
    }


def test_podium_convention_names_are_part_of_input(table: PriceTable) -> None:
    # what podium.core.conventions produces from gen_ai.usage.cache_* attributes
    usage = {
        "input_tokens": 1200,
        "output_tokens": 0,
        "details": {"cached_tokens": 1000, "cache_creation_tokens": 100},
    }
    expected = (100 * Decimal(3) + 1000 * Decimal("0.3") + 100 * Decimal("3.75")) / 1_000_000
    assert compute_cost("claude-3-7-sonnet-20250219", usage, table=table)["input"] == float(expected)  # type: ignore[index]

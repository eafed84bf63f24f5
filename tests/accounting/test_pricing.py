"""Costs checked against per-MTok prices written out here (PROVIDERS.md §9 / genai-prices data).

Nothing below asks promptcache for a rate: every expected dollar figure is computed in the test
from the constants in PRICES.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptcache import ModelPrice, PriceWarning
from promptcache._accounting._pricing import PriceBook, infer_provider, price_data_version
from promptcache._accounting._usage import Usage, decode
from promptcache._api import Api
from tests.accounting.payloads import CASES

D = Decimal
# USD per MTok: input, cache read, write 5m (= OpenAI 30m), write 1h, output.
PRICES: dict[str, tuple[str, str, str | None, str | None, str]] = {
    "gpt-6.1-sol": ("2", "0.10", "2.50", None, "10"),
    "gpt-6.1-sol/flex": ("1", "0.05", "1.25", None, "5"),
    "gpt-5.6-sol": ("4", "0.40", "5", None, "20"),  # since 2026-08-21
    "gpt-5.5": ("5", "0.50", None, None, "30"),  # writes free: billed as plain input
    "claude-opus-5-5": ("4", "0.20", "5", "8", "20"),
    "claude-sonnet-4-5": ("3", "0.30", "3.75", "6", "15"),
    "deepseek-v4-flash": ("0.15", "0.003", None, None, "0.60"),  # off-peak, since 2026-09-10
    "grok-4.7": ("2", "0.50", None, None, "6"),
    "gemini-3.5-flash": ("1.50", "0.15", None, None, "9"),
}
NOON = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()


def expected(key: str, u: Usage) -> tuple[Decimal, Decimal]:
    inp, read, w5, w1, out = (D(x) if x is not None else None for x in PRICES[key])
    assert inp is not None and read is not None and out is not None
    w = w5 if w5 is not None else inp
    ttl = u.cache_write_tokens_by_ttl
    writes = (ttl.get("5m", 0) + ttl.get("30m", 0) + ttl.get("12h", 0)) * w
    writes += ttl.get("1h", 0) * (w1 if w1 is not None else w)
    uncached = u.input_tokens - u.cache_read_tokens - u.cache_write_tokens
    paid = (uncached * inp + u.cache_read_tokens * read + writes + u.output_tokens * out) / 10**6
    without = (u.input_tokens * inp + u.output_tokens * out) / 10**6
    return paid, without


# Hand-computed from the payload numbers, as a second check on expected() itself.
HAND = {
    "openai-chat-json": ("0.0153", "0.029"),
    "openai-chat-json-flex": ("0.00765", "0.0145"),
    "openai-responses-json": ("0.147", "0.24"),
    "anthropic-json": ("0.0332", "0.1002"),
    "anthropic-beta-iterations": ("0.029475", "0.0453"),
    "deepseek-chat-json": ("0.0005892", "0.00153"),
    "xai-chat-json": ("0.0089", "0.0134"),
    "gemini-compat-chat-json": ("0.0072204", "0.01275"),
}


@pytest.mark.parametrize("case", [c for c in CASES if c.expect], ids=lambda c: c.name)
def test_cost_of_every_shape(case: object) -> None:
    from tests.accounting.payloads import Case

    assert isinstance(case, Case)
    d = decode(case.api, case.body, stream=case.stream)
    assert d.usage is not None
    provider = infer_provider(case.api, case.base_url, d.model)
    cost = PriceBook().price(
        d.usage, provider=provider, models=(d.model,), when=NOON, context=d.price_context
    )
    key = (d.model or "") + ("/flex" if d.price_context else "")
    paid, without = expected(key, d.usage)
    assert cost.paid == paid
    assert cost.without_provider_cache == without
    assert cost.saved_by_provider_cache == without - paid
    if case.name in HAND:
        assert (cost.paid, cost.without_provider_cache) == tuple(D(x) for x in HAND[case.name])


def test_deepseek_peak_hours_are_dated() -> None:
    u = Usage(9000, 6400, {}, 300)
    peak = datetime(2026, 11, 28, 7, 0, tzinfo=UTC).timestamp()
    cost = PriceBook().price(u, provider="deepseek", models=("deepseek-v4-flash",), when=peak)
    assert cost.paid == (2600 * D("0.30") + 6400 * D("0.006") + 300 * D("1.20")) / 10**6


def test_dated_price_change() -> None:
    # gpt-5.6-sol was 5 / 0.50 / 6.25 / 30 before 2026-08-21
    u = Usage(10_000, 4_000, {"30m": 1000}, 100)
    before = datetime(2026, 8, 1, tzinfo=UTC).timestamp()
    cost = PriceBook().price(u, provider="openai", models=("gpt-5.6-sol",), when=before)
    assert cost.paid == (5000 * 5 + 4000 * D("0.5") + 1000 * D("6.25") + 100 * 30) / D(10**6)


def test_long_context_tier_applies_to_whole_request() -> None:
    u = Usage(300_000, 100_000, {"30m": 50_000}, 1000)
    cost = PriceBook().price(u, provider="openai", models=("gpt-6.1-sol",), when=NOON)
    # >272K input: 2x input/read/write, 1.5x output, for every token of the request
    assert cost.paid == (150_000 * 4 + 100_000 * D("0.2") + 50_000 * 5 + 1000 * 15) / D(10**6)
    small = Usage(272_000, 0, {}, 0)
    assert (
        PriceBook().price(small, provider="openai", models=("gpt-6.1-sol",), when=NOON).paid
        == D(272_000 * 2) / 10**6
    )


def test_one_hour_writes_are_not_priced_as_five_minute() -> None:
    pb = PriceBook()
    five = pb.price(
        Usage(1000, 0, {"5m": 1000}), provider="anthropic", models=("claude-sonnet-4-5",), when=NOON
    )
    hour = pb.price(
        Usage(1000, 0, {"1h": 1000}), provider="anthropic", models=("claude-sonnet-4-5",), when=NOON
    )
    assert five.paid == D("0.00375") and hour.paid == D("0.006")


def test_write_premium_is_a_negative_saving() -> None:
    cost = PriceBook().price(
        Usage(10_000, 0, {"5m": 10_000}),
        provider="anthropic",
        models=("claude-sonnet-4-5",),
        when=NOON,
    )
    assert cost.paid == D("0.0375") and cost.without_provider_cache == D("0.03")
    assert cost.saved_by_provider_cache == D("-0.0075")


def test_old_openai_model_writes_are_plain_input() -> None:
    cost = PriceBook().price(
        Usage(10_000, 2_000, {"30m": 3_000}, 0), provider="openai", models=("gpt-5.5",), when=NOON
    )
    assert cost.paid == (8000 * 5 + 2000 * D("0.5")) / D(10**6)


def test_unknown_model_is_none_with_one_warning() -> None:
    pb = PriceBook()
    with pytest.warns(PriceWarning, match="my-secret-model"):
        cost = pb.price(
            Usage(10, 0, {}, 1), provider="openai", models=("my-secret-model",), when=NOON
        )
    assert cost.paid is None and cost.without_provider_cache is None
    assert cost.saved_by_provider_cache is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            pb.price(Usage(1), provider="openai", models=("my-secret-model",), when=NOON).paid
            is None
        )


def test_override_for_private_model_and_12h_override() -> None:
    pb = PriceBook(
        {
            "my-ft-model": ModelPrice(
                input_mtok="1",
                output_mtok=2,
                cache_read_mtok="0.1",
                cache_write_mtok="1.25",
                cache_write_12h_mtok="2",
            ),
        }
    )
    u = Usage(10_000, 5_000, {"30m": 1_000, "12h": 2_000}, 500)
    cost = pb.price(u, provider="openai", models=("My-FT-Model",), when=NOON)
    assert cost.source == "override"
    assert cost.paid == (2000 * 1 + 5000 * D("0.1") + 1000 * D("1.25") + 2000 * 2 + 500 * 2) / D(
        10**6
    )


def test_12h_default_assumption_is_cache_write_rate() -> None:
    u = Usage(10_000, 0, {"12h": 10_000}, 0)
    cost = PriceBook().price(u, provider="openai", models=("gpt-5.6-sol",), when=NOON)
    assert cost.paid == D("0.05")  # UNVERIFIED assumption: 12h at cache_write_mtok ($5)


def test_override_validation() -> None:
    from promptcache import ConfigError

    with pytest.raises(ConfigError):
        ModelPrice(input_mtok="-1", output_mtok=1)
    with pytest.raises(ConfigError):
        ModelPrice(input_mtok="nan", output_mtok=1)


@pytest.mark.parametrize(
    ("api", "url", "model", "provider"),
    [
        (Api.OPENAI_CHAT, "https://api.openai.com/v1", "gpt-6.1-sol", "openai"),
        (Api.OPENAI_CHAT, "https://x.openai.azure.com/openai", "prod-deploy", "openai"),
        (Api.ANTHROPIC_MESSAGES, "https://api.anthropic.com", "claude-opus-5-5", "anthropic"),
        (Api.OPENAI_CHAT, "https://api.deepseek.com", "deepseek-v4-flash", "deepseek"),
        (Api.OPENAI_CHAT, "https://api.x.ai/v1", "grok-4.7", "x-ai"),
        (Api.OPENAI_CHAT, "https://generativelanguage.googleapis.com/v1beta/openai", "m", "google"),
        # the emulator / a proxy on loopback prices as the real provider
        (Api.OPENAI_RESPONSES, "http://127.0.0.1:8123/v1", "gpt-5.6-sol", "openai"),
        (Api.ANTHROPIC_MESSAGES, "http://127.0.0.1:8123", "claude-sonnet-4-5", "anthropic"),
        (Api.OPENAI_CHAT, "http://127.0.0.1:8123/v1", "deepseek-v4-flash", "deepseek"),
        (Api.ANTHROPIC_MESSAGES, "http://127.0.0.1:8123", "my-model", "anthropic"),
    ],
)
def test_infer_provider(api: Api, url: str, model: str, provider: str) -> None:
    assert infer_provider(api, url, model) == provider


@given(
    model=st.sampled_from(
        [
            ("anthropic", "claude-sonnet-4-5"),
            ("anthropic", "claude-haiku-5-5"),
            ("anthropic", "claude-fable-5-1"),
            ("openai", "gpt-6.1-sol"),
            ("openai", "gpt-5.5"),
            ("deepseek", "deepseek-v4-flash"),
            ("x-ai", "grok-4.7"),
            ("google", "gemini-3.1-pro-preview"),
        ]
    ),
    total=st.integers(0, 400_000),
    data=st.data(),
)
@settings(max_examples=150, deadline=None)
def test_arithmetic_agrees_with_genai_prices_calc_price(
    model: tuple[str, str], total: int, data: st.DataObject
) -> None:
    # Where genai-prices has keys (5m/1h writes, tiers), our arithmetic must equal its own.
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    read = data.draw(st.integers(0, total))
    write = data.draw(st.integers(0, total - read))
    w1h = data.draw(st.integers(0, write))
    out = data.draw(st.integers(0, 50_000))
    provider, name = model
    ours = PriceBook().price(
        Usage(total, read, {"5m": write - w1h, "1h": w1h}, out),
        provider=provider,
        models=(name,),
        when=NOON,
    )
    theirs = calc_price(
        GUsage(
            input_tokens=total,
            cache_read_tokens=read,
            cache_write_tokens=write,
            cache_write_1h_tokens=w1h,
            output_tokens=out,
        ),
        name,
        provider_id=provider,
        genai_request_timestamp=datetime.fromtimestamp(NOON, UTC),
    )
    assert ours.paid == theirs.total_price


@pytest.mark.parametrize(
    ("url", "model", "provider"),
    [
        ("https://bedrock-runtime.us-east-1.amazonaws.com", "us.anthropic.claude-opus-4-7", "aws"),
        ("https://bedrock-mantle.us-east-1.api.aws/anthropic", "claude-opus-4-7", "aws"),
        ("https://openrouter.ai/api/v1", "anthropic/claude-opus-4-7", "openrouter"),
    ],
)
def test_infer_provider_gateways(url: str, model: str, provider: str) -> None:
    assert infer_provider(Api.ANTHROPIC_MESSAGES, url, model) == provider


def test_model_found_under_fallback_provider() -> None:
    # a host mapped to openai serving a model genai-prices lists only under anthropic
    cost = PriceBook().price(
        Usage(1000, 0, {}, 0),
        provider="openai",
        models=("claude-opus-5-5",),
        when=NOON,
        fallback="anthropic",
    )
    assert cost.paid == D("0.004")


def test_price_data_version_names_the_bundled_release() -> None:
    import genai_prices

    assert price_data_version() == f"genai-prices {genai_prices.__version__} (bundled data)"


def test_price_data_version_names_when_an_updated_snapshot_was_fetched() -> None:
    import genai_prices
    from genai_prices.data_snapshot import DataSnapshot, get_snapshot, set_custom_snapshot

    # What genai_prices.UpdatePrices installs: the same kind of snapshot, marked as fetched.
    fetched = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    updated = DataSnapshot(get_snapshot().providers, from_auto_update=True, timestamp=fetched)
    set_custom_snapshot(updated)
    try:
        assert price_data_version() == (
            f"genai-prices {genai_prices.__version__} (data updated 2026-12-01 09:30 UTC)"
        )
    finally:
        set_custom_snapshot(None)

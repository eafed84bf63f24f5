"""The request-path fast paths agree exactly with the reference implementations."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptcache._accounting._ledger import to_pico
from promptcache._accounting._pricing import (
    PriceBook,
    Rate,
    _IntRates,
    _Rates,
    compute,
    infer_provider,
)
from promptcache._accounting._usage import Usage, decode, decode_sse, decode_sse_full
from promptcache._api import Api
from tests.accounting.payloads import CASES, Case, sse

STREAMS = [c for c in CASES if c.stream]


@pytest.mark.parametrize("case", STREAMS, ids=lambda c: c.name)
def test_fast_sse_equals_full_on_every_cut_and_crlf(case: Case) -> None:
    body = case.body
    for raw in (body, body.replace(b"\n", b"\r\n")):
        # every prefix: streams cut anywhere, mid-event included
        for end in range(0, len(raw) + 1, 7):
            cut = raw[:end]
            assert decode_sse(case.api, cut) == decode_sse_full(case.api, cut), end


def _events(api: Api) -> st.SearchStrategy[list[tuple[str | None, object]]]:
    usage = st.fixed_dictionaries(
        {"input_tokens": st.integers(0, 99), "output_tokens": st.integers(0, 99)}
    )
    tier = st.sampled_from([None, "default", "auto", "flex", "priority"])
    model = st.sampled_from([None, "", "gpt-5.6-sol", "claude-sonnet-5"])
    chat = st.builds(
        lambda m, t, u: {"model": m, "service_tier": t, "usage": u and {"prompt_tokens": 3}},
        model, tier, st.booleans(),
    )  # fmt: skip
    kinds = ["response.created", "response.completed", "response.incomplete", "x"]
    resp = st.builds(
        lambda k, m, u, t: {"type": k, "response": {"model": m, "usage": u, "service_tier": t}},
        st.sampled_from(kinds), model, usage, tier,
    )  # fmt: skip
    ant = st.one_of(
        st.builds(lambda m, u: {"type": "message_start", "message": {"model": m, "usage": u}},
                  model, usage),
        st.builds(lambda u: {"type": "message_delta", "usage": u}, usage),
        st.just({"type": "content_block_delta", "delta": {"text": "message_delta usage"}}),
    )  # fmt: skip
    one = {Api.OPENAI_CHAT: chat, Api.OPENAI_RESPONSES: resp, Api.ANTHROPIC_MESSAGES: ant}[api]
    return st.lists(st.tuples(st.sampled_from([None, "message_delta", "x"]), one), max_size=8)


@pytest.mark.parametrize("api", list(Api))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_sse_equals_full_on_random_streams(api: Api, data: st.DataObject) -> None:
    raw = sse(data.draw(_events(api)), done=data.draw(st.booleans()))
    assert decode_sse(api, raw) == decode_sse_full(api, raw)


@pytest.mark.parametrize("case", [c for c in CASES if c.expect is not None], ids=lambda c: c.name)
def test_integer_pricing_equals_decimal(case: Case) -> None:
    d = decode(case.api, case.body, stream=case.stream)
    u = d.usage
    assert u is not None
    book = PriceBook()
    provider = infer_provider(case.api, case.base_url, d.model or case.model)
    ttl = u.cache_write_tokens_by_ttl
    counts = (u.input_tokens, u.cache_read_tokens, ttl.get("5m", 0), ttl.get("1h", 0),
              ttl.get("30m", 0), ttl.get("12h", 0), u.output_tokens,
              u.reasoning_tokens)  # fmt: skip
    when = time.time()
    kw = {"provider": provider, "models": (d.model, case.model), "when": when}
    c = book.price(u, context=d.price_context, **kw)  # type: ignore[arg-type]
    p = book.pico(counts, context=d.price_context, **kw)  # type: ignore[arg-type]
    if c.paid is None:
        assert p is None
    else:
        assert p == (to_pico(c.paid), to_pico(c.without_provider_cache))


_dec = st.decimals(min_value=0, max_value=100, places=9, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    rates=st.lists(st.one_of(st.none(), _dec), min_size=7, max_size=7),
    tier=st.one_of(st.none(), st.tuples(st.integers(0, 500), _dec)),
    fee=st.one_of(st.none(), _dec),
    counts=st.lists(st.integers(0, 10**6), min_size=8, max_size=8),
)
def test_integer_rates_round_like_decimal(
    rates: list[Decimal | None], tier: tuple[int, Decimal] | None, fee: Decimal | None,
    counts: list[int],
) -> None:  # fmt: skip
    inp = rates[0] if rates[0] is not None else Decimal("0.1")
    base: Rate = inp if tier is None else (inp, (tier,))
    r = _Rates(
        base, rates[1] or Decimal(2), cache_read=rates[2], write_5m=rates[3], write_1h=rates[4],
        write_30m=rates[5], reasoning=rates[6], requests_kcount=fee,
    )  # fmt: skip
    ttl = dict(zip(("5m", "1h", "30m", "12h"), counts[2:6], strict=True))
    total = counts[0] + counts[1] + sum(ttl.values())
    out = counts[6] + counts[7]
    u = Usage(total, counts[1], ttl, out, counts[7])
    c = compute(r, u)
    ic = (total, counts[1], counts[2], counts[3], counts[4], counts[5], out, counts[7])
    assert _IntRates.of(r).price(ic) == (to_pico(c.paid), to_pico(c.without_provider_cache))

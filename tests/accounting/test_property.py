"""Property: over random workloads against the emulator, the ledger equals its ground truth.

Driven end to end: real SDKs, wrapped by ``PromptCache`` (response cache on, so some calls are
local hits), talking over loopback HTTP to the emulator, whose ``calls`` record what it billed.
Costs are checked against per-MTok prices written out in this file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promptcache
from promptcache.testing import Emulator, FakeClock

D = Decimal
# USD / MTok: input, read, write (5m / 30m / 12h), write 1h, output — genai-prices 0.2.3 data.
PRICES: dict[str, tuple[str, str, str | None, str | None, str]] = {
    "gpt-5.6-sol": ("4", "0.4", "5", None, "20"),
    "gpt-5.5": ("5", "0.5", None, None, "30"),
    "claude-sonnet-4-6": ("3", "0.3", "3.75", "6", "15"),
    "claude-opus-5-5": ("4", "0.2", "5", "8", "20"),
}
SYSTEMS = ["alpha " * 1500, "beta " * 2600, "gamma " * 5000]


def cost(model: str, c: Any) -> tuple[Decimal, Decimal]:
    inp, read, w, w1h, out = (D(x) if x else None for x in PRICES[model])
    assert inp is not None and read is not None and out is not None
    wr = w if w is not None else inp
    ttl = c.cache_write_by_ttl
    writes = sum(n for k, n in ttl.items() if k != "1h") * wr + ttl.get("1h", 0) * (w1h or wr)
    paid = c.uncached_input_tokens * inp + c.cache_read_tokens * read + writes
    paid += c.output_tokens * out
    return paid / 10**6, (c.input_tokens * inp + c.output_tokens * out) / 10**6


op = st.fixed_dictionaries(
    {
        "api": st.sampled_from(["chat", "responses", "anthropic"]),
        "openai_model": st.sampled_from(["gpt-5.6-sol", "gpt-5.5"]),
        "anthropic_model": st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5"]),
        "stream": st.booleans(),
        "system": st.integers(0, len(SYSTEMS) - 1),
        "question": st.integers(0, 2),
        "ttl": st.sampled_from([None, "5m", "1h"]),
        "responses_ttl": st.sampled_from([None, "30m", "12h"]),
        "advance": st.sampled_from([0, 0, 30, 400, 4000]),
    }
)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(clock=FakeClock()) as e:
        yield e


def run(op: dict[str, Any], oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    system, question = SYSTEMS[op["system"]], f"question {op['question']}"
    if op["api"] == "chat":
        msgs: Any = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        if op["stream"]:
            for _ in oa.chat.completions.create(
                model=op["openai_model"],
                messages=msgs,
                stream=True,
                stream_options={"include_usage": True},
            ):
                pass
        else:
            oa.chat.completions.create(model=op["openai_model"], messages=msgs)
    elif op["api"] == "responses":
        extra: dict[str, Any] = {}
        if op["responses_ttl"] and op["openai_model"] == "gpt-5.6-sol":
            extra = {"prompt_cache_options": {"ttl": op["responses_ttl"]}}
        if op["stream"]:
            for _ in oa.responses.create(
                model=op["openai_model"],
                instructions=system,
                input=question,
                stream=True,
                extra_body=extra,
            ):
                pass
        else:
            oa.responses.create(
                model=op["openai_model"], instructions=system, input=question, extra_body=extra
            )
    else:
        block: Any = {"type": "text", "text": system}
        if op["ttl"]:
            block["cache_control"] = {"type": "ephemeral", "ttl": op["ttl"]}
        kwargs: Any = {
            "model": op["anthropic_model"],
            "max_tokens": 64,
            "system": [block],
            "messages": [{"role": "user", "content": question}],
        }
        if op["stream"]:
            with an.messages.stream(**kwargs) as s:
                s.until_done()
        else:
            an.messages.create(**kwargs)


@given(ops=st.lists(op, min_size=1, max_size=8))
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_ledger_equals_emulator_ground_truth(emu: Emulator, ops: list[dict[str, Any]]) -> None:
    clock = emu.clock
    assert isinstance(clock, FakeClock)
    first = len(emu.calls)
    with tempfile.TemporaryDirectory() as d:
        pc = promptcache.PromptCache(directory=d, restructure="off")
        bare_oa = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
        bare_an = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
        oa, an = pc.wrap(bare_oa), pc.wrap(bare_an)
        try:
            for o in ops:
                clock.advance(o["advance"])
                run(o, oa, an)
            s = pc.ledger.summary()
            served = emu.calls[first:]
        finally:
            for cl in (oa, an, bare_oa, bare_an):
                cl.close()
            pc.close()
    assert all(c.status == 200 for c in served)
    assert s.requests == len(ops) and s.requests - s.local_hits == len(served)
    assert s.input_tokens == sum(c.input_tokens for c in served)
    assert s.uncached_input_tokens == sum(c.uncached_input_tokens for c in served)
    assert s.cache_read_tokens == sum(c.cache_read_tokens for c in served)
    assert s.cache_write_tokens == sum(c.cache_write_tokens for c in served)
    ttl: dict[str, int] = {}
    for c in served:
        for k, v in c.cache_write_by_ttl.items():
            if v:
                ttl[k] = ttl.get(k, 0) + v
    assert s.cache_write_tokens_by_ttl == ttl
    assert s.output_tokens == sum(c.output_tokens for c in served)
    assert s.reasoning_tokens == sum(c.reasoning_tokens for c in served)
    paid = sum((cost(c.model, c)[0] for c in served), D(0))
    without = sum((cost(c.model, c)[1] for c in served), D(0))
    assert s.cost == paid
    assert s.cost_without_provider_cache == without
    assert s.saved_by_provider_cache == without - paid
    assert s.unknown_cost_requests == 0 and s.unknown_usage_requests == 0

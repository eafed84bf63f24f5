"""Every usage shape, decoded from wire bytes and, the same bytes, parsed by the real SDKs."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest

from promptcache._accounting._usage import Usage, decode, decode_json, decode_sse
from promptcache._api import Api
from tests.accounting.payloads import ANT_SSE_EVENTS, CASES, Case, sse


def buckets(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "uncached_input_tokens": u.uncached_input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cache_write_tokens_by_ttl": dict(u.cache_write_tokens_by_ttl),
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decoder_buckets(case: Case) -> None:
    d = decode(case.api, case.body, stream=case.stream)
    assert d.model == case.model
    assert d.price_context == case.context
    if case.expect is None:
        assert d.usage is None  # unknown, not zero
    else:
        assert d.usage is not None
        assert buckets(d.usage) == case.expect
        # inclusive input is the sum of its parts, nothing counted twice
        u = d.usage
        parts = u.uncached_input_tokens + u.cache_read_tokens + u.cache_write_tokens
        assert u.input_tokens == parts


def _handler(case: Case) -> Any:
    ctype = "text/event-stream" if case.stream else "application/json"

    def handle(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": ctype}, content=case.body)

    return handle


def _openai(case: Case) -> openai.OpenAI:
    http = httpx2.Client(transport=httpx2.MockTransport(_handler(case)))
    return openai.OpenAI(api_key="x", base_url=case.base_url, http_client=http)


def _anthropic(case: Case) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(_handler(case)))
    return anthropic.Anthropic(api_key="x", base_url=case.base_url, http_client=http)


def _sdk_buckets(case: Case) -> dict[str, Any] | None:
    """Buckets computed by the test from the SDK's own typed objects (independent of us)."""
    msgs: Any = [{"role": "user", "content": "hi"}]
    if case.api is Api.OPENAI_CHAT:
        c = _openai(case)
        if case.stream:
            usage = None
            for chunk in c.chat.completions.create(
                model="m", messages=msgs, stream=True, stream_options={"include_usage": True}
            ):
                usage = chunk.usage or usage
        else:
            usage = c.chat.completions.create(model="m", messages=msgs).usage
        if usage is None:
            return None
        ptd, ctd = usage.prompt_tokens_details, usage.completion_tokens_details
        read = (ptd.cached_tokens or 0) if ptd else 0
        write = (ptd.cache_write_tokens or 0) if ptd else 0
        reasoning = (ctd.reasoning_tokens or 0) if ctd else 0
        output = usage.completion_tokens
        if usage.total_tokens == usage.prompt_tokens + output + reasoning and reasoning:
            output += reasoning  # xAI-style: reasoning reported beside completion
        return {
            "input_tokens": usage.prompt_tokens,
            "uncached_input_tokens": usage.prompt_tokens - read - write,
            "cache_read_tokens": read,
            "cache_write_tokens": write,
            "cache_write_tokens_by_ttl": {"30m": write} if write else {},
            "output_tokens": output,
            "reasoning_tokens": reasoning,
        }
    if case.api is Api.OPENAI_RESPONSES:
        c = _openai(case)
        if case.stream:
            final = None
            for ev in c.responses.create(model="m", input="hi", stream=True):
                if ev.type == "response.completed":
                    final = ev.response
            assert final is not None
            ru = final.usage
        else:
            ru = c.responses.create(model="m", input="hi").usage
        assert ru is not None
        det = ru.input_tokens_details
        split = det.cache_write_tokens_details
        assert split is not None
        return {
            "input_tokens": ru.input_tokens,
            "uncached_input_tokens": ru.input_tokens - det.cached_tokens - det.cache_write_tokens,
            "cache_read_tokens": det.cached_tokens,
            "cache_write_tokens": det.cache_write_tokens,
            "cache_write_tokens_by_ttl": {"30m": split.ttl_30m_tokens, "12h": split.ttl_12h_tokens},
            "output_tokens": ru.output_tokens,
            "reasoning_tokens": ru.output_tokens_details.reasoning_tokens,
        }
    a = _anthropic(case)
    if case.beta:
        bu = a.beta.messages.create(model="m", max_tokens=10, messages=msgs).usage
        parts: list[Any] = [bu] + [it for it in (bu.iterations or []) if it.type == "compaction"]
    elif case.stream:
        with a.messages.stream(model="m", max_tokens=10, messages=msgs) as s:
            parts = [s.get_final_message().usage]
    else:
        parts = [a.messages.create(model="m", max_tokens=10, messages=msgs).usage]
    out: dict[str, Any] = dict.fromkeys(
        ["input_tokens", "uncached_input_tokens", "cache_read_tokens", "cache_write_tokens"], 0
    )
    out |= {"output_tokens": 0, "reasoning_tokens": 0}
    ttl: dict[str, int] = {}
    for p in parts:
        read = p.cache_read_input_tokens or 0
        write = p.cache_creation_input_tokens or 0
        out["input_tokens"] += p.input_tokens + read + write
        out["uncached_input_tokens"] += p.input_tokens
        out["cache_read_tokens"] += read
        out["cache_write_tokens"] += write
        out["output_tokens"] += p.output_tokens
        cc = p.cache_creation
        w5, w1 = (cc.ephemeral_5m_input_tokens, cc.ephemeral_1h_input_tokens) if cc else (write, 0)
        for k, v in (("5m", w5), ("1h", w1)):
            if v:
                ttl[k] = ttl.get(k, 0) + v
    out["cache_write_tokens_by_ttl"] = ttl
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sdk_parses_same_payload(case: Case) -> None:
    assert _sdk_buckets(case) == case.expect


def test_anthropic_cut_stream_bills_message_start() -> None:
    # The stream dies after the first text delta: what message_start reported was billed.
    raw = sse(ANT_SSE_EVENTS[:3])
    d = decode_sse(Api.ANTHROPIC_MESSAGES, raw + b'event: message_delta\ndata: {"type": "mess')
    assert d.usage is not None
    assert d.usage.input_tokens == 23050
    assert d.usage.cache_write_tokens_by_ttl == {"5m": 1000, "1h": 2000}
    assert d.usage.output_tokens == 1


def test_anthropic_delta_changing_write_total_drops_stale_split() -> None:
    events = list(ANT_SSE_EVENTS)
    events[4] = (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {},
            "usage": {"output_tokens": 9, "cache_creation_input_tokens": 4000},
        },
    )
    d = decode_sse(Api.ANTHROPIC_MESSAGES, sse(events))
    assert d.usage is not None
    assert d.usage.cache_write_tokens == 4000
    assert d.usage.cache_write_tokens_by_ttl == {"5m": 4000}


def test_responses_stream_cut_before_completed_is_unknown() -> None:
    raw = sse(
        [
            (
                "response.created",
                {"type": "response.created", "response": {"model": "gpt-5.6-sol", "usage": None}},
            )
        ]
    )
    d = decode_sse(Api.OPENAI_RESPONSES, raw)
    assert d.usage is None and d.model == "gpt-5.6-sol"


def test_malformed_bodies_are_unknown_not_zero() -> None:
    for api in Api:
        assert decode_json(api, b"not json").usage is None
        assert decode_json(api, b"[1, 2]").usage is None
        assert decode_json(api, b"{}").usage is None
        assert decode_sse(api, b"").usage is None


def test_usage_add_and_json_roundtrip() -> None:
    a = Usage(100, 50, {"5m": 10}, 7, 2)
    b = Usage(10, 0, {"1h": 5, "5m": 1}, 3, 0)
    s = a + b
    assert s == Usage(110, 50, {"5m": 11, "1h": 5}, 10, 2)
    assert Usage.from_json(s.to_json()) == s
    assert s.uncached_input_tokens == 110 - 50 - 16

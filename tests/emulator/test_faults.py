"""Fault injection: 429 with retry-after, 500, 529, dropped streams — as the SDKs see them."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest

from promptcache.testing import Emulator, Fault

HELLO: Any = [{"role": "user", "content": "hello"}]


def test_rate_limit_without_retries(emulator: Emulator, oai: openai.OpenAI) -> None:
    emulator.inject(Fault.rate_limit(retry_after=7))
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"
    # The fault was used up: the next call succeeds.
    assert oai.chat.completions.create(model="gpt-4o", messages=HELLO).choices
    assert [c.status for c in emulator.calls] == [429, 200]
    assert emulator.calls[0].fault == "rate_limit"
    assert emulator.calls[0].input_tokens == 0  # nothing billed for a rejected request


def test_rate_limit_is_retried_by_the_sdk(emulator: Emulator) -> None:
    emulator.inject("rate_limit", times=2, retry_after=0.01)
    with openai.OpenAI(base_url=emulator.openai_base_url, api_key="x", max_retries=2) as client:
        resp = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert resp.choices[0].message.content
    assert [c.status for c in emulator.calls] == [429, 429, 200]


def test_server_error_shape(
    emulator: Emulator, oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    emulator.inject(Fault.server_error(api="openai.chat"))
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="gpt-4o", messages=HELLO)
    body: Any = info.value.body
    assert body["type"] == "server_error"
    emulator.inject(Fault.server_error(), times=1)
    with pytest.raises(anthropic.InternalServerError) as ainfo:
        ant.messages.create(model="claude-sonnet-5", max_tokens=5, messages=HELLO)
    abody: Any = ainfo.value.body
    assert abody["type"] == "error" and abody["error"]["type"] == "api_error"


def test_fault_matching_by_api_and_model(emulator: Emulator, oai: openai.OpenAI) -> None:
    emulator.inject(Fault.rate_limit(), api="anthropic.messages")
    emulator.inject(Fault.server_error(model="gpt-4.1"))
    assert oai.chat.completions.create(model="gpt-4o", messages=HELLO).choices  # no match
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4.1", messages=HELLO)


def test_anthropic_overloaded_529_then_retry(emulator: Emulator) -> None:
    emulator.inject(Fault.overloaded(retry_after=0.01))
    with anthropic.Anthropic(
        base_url=emulator.anthropic_base_url, api_key="x", max_retries=0
    ) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            client.messages.create(model="claude-sonnet-5", max_tokens=5, messages=HELLO)
        assert info.value.status_code == 529
        assert info.value.response.headers["retry-after-ms"] == "10"
        emulator.inject(Fault.overloaded(retry_after=0.01))
        ok = client.with_options(max_retries=1).messages.create(
            model="claude-sonnet-5", max_tokens=5, messages=HELLO
        )
    assert ok.content
    assert [c.status for c in emulator.calls] == [529, 529, 200]


def test_stream_cut_mid_way_openai(emulator: Emulator, oai: openai.OpenAI) -> None:
    emulator.inject(Fault.stream_cut(after_events=3))
    stream = oai.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    received = []
    with pytest.raises((httpx2.TransportError, openai.APIError)):
        for chunk in stream:
            received.append(chunk)
    assert 0 < len(received) <= 3
    assert emulator.calls[-1].fault == "stream_cut"
    # The connection pool recovers: the next call works.
    assert oai.chat.completions.create(model="gpt-4o", messages=HELLO).choices


def test_stream_cut_mid_way_anthropic(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    emulator.inject("stream_cut", after_events=4)
    with pytest.raises((httpx2.TransportError, anthropic.APIError)):  # noqa: SIM117
        with ant.messages.stream(model="claude-sonnet-5", max_tokens=50, messages=HELLO) as stream:
            for _ in stream:
                pass


async def test_async_rate_limit_and_stream_cut(
    emulator: Emulator, aoai: openai.AsyncOpenAI
) -> None:
    emulator.inject(Fault.rate_limit(retry_after=3))
    with pytest.raises(openai.RateLimitError):
        await aoai.chat.completions.create(model="gpt-4o", messages=HELLO)
    emulator.inject(Fault.stream_cut(after_events=2))
    stream = await aoai.responses.create(model="gpt-4.1", input="hi", stream=True)
    with pytest.raises((httpx2.TransportError, openai.APIError)):
        async for _ in stream:
            pass


def test_json_answer_cut_is_a_connection_error(emulator: Emulator, oai: openai.OpenAI) -> None:
    emulator.inject(Fault.stream_cut())
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="gpt-4o", messages=HELLO)


def test_inject_validates_its_input(emulator: Emulator) -> None:
    with pytest.raises(ValueError):
        emulator.inject("rate_limit", times=0)
    with pytest.raises(ValueError):
        emulator.inject("explode")  # type: ignore[arg-type]

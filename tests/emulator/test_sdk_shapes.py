"""Real SDKs, sync and async, JSON and streaming, parse every emulator answer into their types."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
from anthropic.types import Message
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from promptcache.testing import Emulator, ServedCall

SYSTEM = "You are a careful assistant. " * 200  # 5,800 bytes -> 1,450 tokens + 4 header


def test_chat_json_typed_usage(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    resp = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    assert isinstance(resp, ChatCompletion)
    assert resp.id.startswith("chatcmpl-")
    assert resp.object == "chat.completion"
    assert resp.system_fingerprint
    assert resp.created == 1_800_000_000
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.role == "assistant"
    assert resp.usage is not None
    # 16-byte header + "hello" (5 bytes) = 21 bytes -> 6 tokens; + 4-token reply primer.
    assert resp.usage.prompt_tokens == 10
    assert resp.usage.completion_tokens == 24
    assert resp.usage.total_tokens == 34
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    # Before gpt-5.6 writes are free and not reported at all.
    assert resp.usage.prompt_tokens_details.cache_write_tokens is None
    assert len((resp.choices[0].message.content or "").split()) == 24


def test_same_request_same_text_fresh_ids(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    msgs: list[dict[str, str]] = [{"role": "user", "content": "same"}]
    a = client.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
    b = client.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.id != b.id
    c = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "different"}]
    )
    assert c.choices[0].message.content != a.choices[0].message.content


def test_chat_max_tokens_truncates(emulator: Emulator, oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=5
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 5


def test_chat_stream_include_usage(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 24
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.prompt_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])
    call = emulator.calls[-1]
    assert call.stream and call.api == "openai.chat" and call.output_tokens == 24


def test_chat_stream_without_usage_has_none(emulator: Emulator, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


def test_chat_stream_manager_final_completion(emulator: Emulator, oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        stream_options={"include_usage": True},
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.usage is not None and final.usage.completion_tokens == 24
    assert final.choices[0].message.content


async def test_chat_async_json_and_stream(emulator: Emulator, aoai: openai.AsyncOpenAI) -> None:
    client = aoai
    resp = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    assert resp.usage is not None and resp.usage.prompt_tokens == 10
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24


def test_anthropic_json_typed_usage(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    msg = ant.messages.create(
        model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    )
    assert isinstance(msg, Message)
    assert msg.id.startswith("msg_")
    assert msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text"
    assert msg.usage.input_tokens == 10
    assert msg.usage.cache_read_input_tokens == 0
    assert msg.usage.cache_creation_input_tokens == 0
    assert msg.usage.cache_creation is not None
    assert msg.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert msg.usage.output_tokens == 24


def test_anthropic_stream_events_and_final_usage(
    emulator: Emulator, ant: anthropic.Anthropic
) -> None:
    client = ant
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    events: list[Any] = list(
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=100,
            system=system,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "hello"}],
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)
    start = events[0]
    assert start.type == "message_start"
    usage = start.message.usage
    assert usage.cache_creation_input_tokens == 1454
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 1454
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.usage.output_tokens == 24
    assert delta.delta.stop_reason == "end_turn"

    with client.messages.stream(
        model="claude-sonnet-5",
        max_tokens=100,
        system=system,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "hello"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 24
    assert final.usage.cache_read_input_tokens == 1454
    assert final.usage.output_tokens == 24
    assert final.usage.input_tokens == 10


async def test_anthropic_async_json_and_stream(
    emulator: Emulator, aant: anthropic.AsyncAnthropic
) -> None:
    client = aant
    msg = await client.messages.create(
        model="claude-opus-5", max_tokens=10, messages=[{"role": "user", "content": "hello"}]
    )
    assert msg.stop_reason == "max_tokens" and msg.usage.output_tokens == 10
    async with client.messages.stream(
        model="claude-opus-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens == 24


def test_responses_json_and_stream(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    resp = client.responses.create(model="gpt-4.1", input="hello", instructions="Be brief.")
    assert isinstance(resp, Response)
    assert resp.id.startswith("resp_") and resp.status == "completed"
    assert len(resp.output_text.split()) == 24
    assert resp.usage is not None
    assert resp.usage.input_tokens_details.cached_tokens == 0
    assert resp.usage.input_tokens_details.cache_write_tokens == 0
    assert resp.usage.output_tokens_details.reasoning_tokens == 0

    with client.responses.stream(model="gpt-4.1", input="hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert final.usage is not None and final.usage.output_tokens == 24
    assert final.output_text == " ".join(final.output_text.split())


async def test_responses_async_stream(emulator: Emulator, aoai: openai.AsyncOpenAI) -> None:
    client = aoai
    stream = await client.responses.create(model="gpt-6-luna", input="hello", stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.completed"
    completed = events[-1].response
    assert completed.usage is not None
    details = completed.usage.input_tokens_details
    assert details.cache_write_tokens_details is not None
    assert details.cache_write_tokens_details.ttl_30m_tokens == 0  # below the 1,024 minimum


def test_reasoning_tokens_counted_in_output(emulator: Emulator, oai: openai.OpenAI) -> None:
    client = oai
    resp = client.chat.completions.create(
        model="gpt-5.6-sol", messages=[{"role": "user", "content": "hi"}], reasoning_effort="low"
    )
    assert resp.usage is not None and resp.usage.completion_tokens_details is not None
    assert resp.usage.completion_tokens_details.reasoning_tokens == 8
    assert resp.usage.completion_tokens == 32
    r = client.responses.create(model="gpt-5.6-sol", input="hi", reasoning={"effort": "high"})
    assert r.usage is not None and r.usage.output_tokens_details.reasoning_tokens == 32
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert emulator.calls[-1].reasoning_tokens == 32


def test_ground_truth_endpoint_matches_calls(
    emulator: Emulator, oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    ant.messages.count_tokens(
        model="claude-sonnet-5", messages=[{"role": "user", "content": "hello"}]
    )
    with httpx2.Client() as http:
        data = http.get(emulator.base_url + "/_emulator/calls").json()
        lean = http.get(emulator.base_url + "/_emulator/calls?bodies=0").json()
    assert [d["api"] for d in data] == ["openai.chat", "anthropic.count_tokens"]
    assert data == [c.to_json() for c in emulator.calls]
    assert data[0]["request_body"]["model"] == "gpt-4o"
    assert lean[0]["request_body"] is None
    call = emulator.calls[0]
    assert isinstance(call, ServedCall)
    assert call.input_tokens == 10 and call.uncached_input_tokens == 10
    assert call.response_id is not None and call.response_id.startswith("chatcmpl-")


def test_count_tokens(emulator: Emulator, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    client = ant
    counted = client.messages.count_tokens(
        model="claude-sonnet-5", system=SYSTEM, messages=[{"role": "user", "content": "hello"}]
    )
    msg = client.messages.create(
        model="claude-sonnet-5",
        max_tokens=5,
        system=SYSTEM,
        messages=[{"role": "user", "content": "hello"}],
    )
    assert counted.input_tokens == msg.usage.input_tokens == 1454 + 10
    oa = oai.responses.input_tokens.count(model="gpt-4.1", input="hello")
    assert oa.input_tokens == 10


def test_reset_forgets_calls_and_cache(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    system: Any = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    kwargs: Any = dict(
        model="claude-sonnet-5", max_tokens=5, messages=[{"role": "user", "content": "q"}]
    )
    client.messages.create(system=system, **kwargs)
    emulator.reset()
    assert emulator.calls == []
    again = client.messages.create(system=system, **kwargs)
    assert again.usage.cache_read_input_tokens == 0
    assert again.usage.cache_creation_input_tokens == 1454

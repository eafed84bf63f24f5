"""Every JSON body and SSE event validates strictly against the installed SDKs' pydantic types.

The SDKs parse leniently (missing fields become None), so this checks the wire shapes with
``model_validate`` / ``TypeAdapter.validate_python``: no required field is missing.
"""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
import pytest
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from promptcache.testing import Emulator

TOOL_SCHEMA: Any = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
LONG = "Shared reference text. " * 300


def _sse(body: bytes) -> list[Any]:
    events = []
    for line in body.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(orjson.loads(line[6:]))
    return events


@pytest.fixture()
def http(emulator: Emulator) -> Any:
    with httpx2.Client(base_url=emulator.base_url) as client:
        yield client


CHAT_BODIES: list[Any] = [
    {"model": "gpt-4o", "messages": [{"role": "user", "content": LONG}]},
    {
        "model": "gpt-5.6-sol",
        "messages": [{"role": "user", "content": LONG}],
        "reasoning_effort": "medium",
    },
    {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": TOOL_SCHEMA}}],
    },
]
RESPONSES_BODIES: list[Any] = [
    {"model": "gpt-4.1", "input": LONG},
    {"model": "gpt-6-luna", "input": LONG, "reasoning": {"effort": "low"}, "max_output_tokens": 9},
    {
        "model": "gpt-4.1",
        "input": "x",
        "tool_choice": "required",
        "tools": [{"type": "function", "name": "f", "parameters": TOOL_SCHEMA, "strict": True}],
    },
]
MESSAGES_BODIES: list[Any] = [
    {
        "model": "claude-sonnet-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": LONG}],
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    },
    {
        "model": "claude-sonnet-5",
        "max_tokens": 2000,
        "messages": [{"role": "user", "content": "x"}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    },
    {
        "model": "claude-sonnet-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": {"type": "any"},
        "tools": [{"name": "f", "input_schema": TOOL_SCHEMA}],
    },
]


@pytest.mark.parametrize("body", CHAT_BODIES)
def test_chat_wire(http: Any, body: Any) -> None:
    ChatCompletion.model_validate(http.post("/v1/chat/completions", json=body).json())
    streamed = dict(body, stream=True, stream_options={"include_usage": True})
    chunks = _sse(http.post("/v1/chat/completions", json=streamed).content)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert chunks[-1]["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("body", RESPONSES_BODIES)
def test_responses_wire(http: Any, body: Any) -> None:
    Response.model_validate(http.post("/v1/responses", json=body).json())
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    events = _sse(http.post("/v1/responses", json=dict(body, stream=True)).content)
    for event in events:
        adapter.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


@pytest.mark.parametrize("body", MESSAGES_BODIES)
def test_messages_wire(http: Any, body: Any) -> None:
    Message.model_validate(http.post("/v1/messages", json=body).json())
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    for event in _sse(http.post("/v1/messages", json=dict(body, stream=True)).content):
        if event["type"] != "ping":
            adapter.validate_python(event)
    counted = http.post(
        "/v1/messages/count_tokens", json={k: v for k, v in body.items() if k != "max_tokens"}
    )
    MessageTokensCount.model_validate(counted.json())

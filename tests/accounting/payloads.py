"""Wire payloads (as the providers send them) and the buckets each must decode to.

Expected numbers are written out by hand from the payload, not computed by promptcache.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from promptcache._api import Api


def sse(events: Sequence[tuple[str | None, Any]], done: bool = False) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


@dataclass(frozen=True)
class Case:
    name: str
    api: Api
    stream: bool
    body: bytes
    model: str | None
    # expected buckets (None = usage unknown)
    expect: dict[str, Any] | None
    base_url: str = "https://api.openai.com/v1"
    beta: bool = False
    context: tuple[tuple[str, str], ...] = field(default=())


def _chat(model: str, usage: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764300000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
            }
        ],
        **extra,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1764300000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


CHAT_USAGE = {
    "prompt_tokens": 12000,
    "completion_tokens": 500,
    "total_tokens": 12500,
    "prompt_tokens_details": {"cached_tokens": 8000, "cache_write_tokens": 3000},
    "completion_tokens_details": {"reasoning_tokens": 200},
}
CHAT_EXPECT = {
    "input_tokens": 12000,
    "uncached_input_tokens": 1000,
    "cache_read_tokens": 8000,
    "cache_write_tokens": 3000,
    "cache_write_tokens_by_ttl": {"30m": 3000},
    "output_tokens": 500,
    "reasoning_tokens": 200,
}

_chat_stream_head = [
    (None, _chunk("gpt-6.1-sol", {"role": "assistant", "content": ""})),
    (None, _chunk("gpt-6.1-sol", {"content": "hi"})),
    (None, _chunk("gpt-6.1-sol", {}, "stop")),
]
_usage_chunk = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1764300000,
    "model": "gpt-6.1-sol",
    "choices": [],
    "usage": CHAT_USAGE,
}

RESP_USAGE = {
    "input_tokens": 50000,
    "input_tokens_details": {
        "cached_tokens": 30000,
        "cache_write_tokens": 15000,
        "cache_write_tokens_details": {"ttl_30m_tokens": 10000, "ttl_12h_tokens": 5000},
    },
    "output_tokens": 2000,
    "output_tokens_details": {"reasoning_tokens": 1200},
    "total_tokens": 52000,
}
RESP_EXPECT = {
    "input_tokens": 50000,
    "uncached_input_tokens": 5000,
    "cache_read_tokens": 30000,
    "cache_write_tokens": 15000,
    "cache_write_tokens_by_ttl": {"30m": 10000, "12h": 5000},
    "output_tokens": 2000,
    "reasoning_tokens": 1200,
}


def _response(usage: dict[str, Any] | None, status: str = "completed") -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1764300000,
        "status": status,
        "model": "gpt-5.6-sol",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "hi", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


_resp_in_progress = {**_response(None, "in_progress"), "output": []}

ANT_USAGE = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 20000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    "output_tokens": 400,
    "service_tier": "standard",
}
ANT_EXPECT = {
    "input_tokens": 23050,
    "uncached_input_tokens": 50,
    "cache_read_tokens": 20000,
    "cache_write_tokens": 3000,
    "cache_write_tokens_by_ttl": {"5m": 1000, "1h": 2000},
    "output_tokens": 400,
    "reasoning_tokens": 0,
}


def _message(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


_ant_start_usage = {**ANT_USAGE, "output_tokens": 1}
ANT_SSE_EVENTS: list[tuple[str | None, Any]] = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {**_message("claude-opus-5-5", _ant_start_usage), "content": []},
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "hi"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            # cumulative; input fields repeated (nullable) without the TTL split
            "usage": {
                "output_tokens": 400,
                "input_tokens": 50,
                "cache_creation_input_tokens": 3000,
                "cache_read_input_tokens": None,
            },
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]

ANT_ITER_USAGE = {
    "input_tokens": 100,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 5000,
    "output_tokens": 300,
    "iterations": [
        {
            "type": "compaction",
            "input_tokens": 4000,
            "cache_creation_input_tokens": 500,
            "cache_read_input_tokens": 1000,
            "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 600,
        },
        {
            "type": "message",
            "input_tokens": 100,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 5000,
            "output_tokens": 300,
        },
    ],
}
ANT_ITER_EXPECT = {
    # top-level 5100 + compaction 5500 (compaction is not in the top-level fields)
    "input_tokens": 10600,
    "uncached_input_tokens": 4100,
    "cache_read_tokens": 6000,
    "cache_write_tokens": 500,
    "cache_write_tokens_by_ttl": {"5m": 500},
    "output_tokens": 900,
    "reasoning_tokens": 0,
}

DEEPSEEK_USAGE = {
    "prompt_tokens": 9000,
    "completion_tokens": 300,
    "total_tokens": 9300,
    "prompt_tokens_details": {"cached_tokens": 6400},
    "prompt_cache_hit_tokens": 6400,
    "prompt_cache_miss_tokens": 2600,
}
XAI_USAGE = {
    # xAI reports reasoning beside completion: total = prompt + completion + reasoning
    "prompt_tokens": 4000,
    "completion_tokens": 100,
    "total_tokens": 4900,
    "prompt_tokens_details": {"cached_tokens": 3000, "text_tokens": 4000},
    "completion_tokens_details": {"reasoning_tokens": 800},
}
GEMINI_USAGE = {
    "prompt_tokens": 7000,
    "completion_tokens": 250,
    "total_tokens": 7250,
    "prompt_tokens_details": {"cached_tokens": 4096},
}

CASES: list[Case] = [
    Case(
        "openai-chat-json",
        Api.OPENAI_CHAT,
        False,
        json.dumps(_chat("gpt-6.1-sol", CHAT_USAGE)).encode(),
        "gpt-6.1-sol",
        CHAT_EXPECT,
    ),
    Case(
        "openai-chat-sse-include-usage",
        Api.OPENAI_CHAT,
        True,
        sse([*_chat_stream_head, (None, _usage_chunk)], done=True),
        "gpt-6.1-sol",
        CHAT_EXPECT,
    ),
    Case(
        "openai-chat-sse-no-usage",
        Api.OPENAI_CHAT,
        True,
        sse(_chat_stream_head, done=True),
        "gpt-6.1-sol",
        None,
    ),
    Case(
        "openai-chat-json-flex",
        Api.OPENAI_CHAT,
        False,
        json.dumps(_chat("gpt-6.1-sol", CHAT_USAGE, service_tier="flex")).encode(),
        "gpt-6.1-sol",
        CHAT_EXPECT,
        context=(("service_tier", "flex"),),
    ),
    Case(
        "openai-responses-json",
        Api.OPENAI_RESPONSES,
        False,
        json.dumps(_response(RESP_USAGE)).encode(),
        "gpt-5.6-sol",
        RESP_EXPECT,
    ),
    Case(
        "openai-responses-sse",
        Api.OPENAI_RESPONSES,
        True,
        sse(
            [
                (
                    "response.created",
                    {
                        "type": "response.created",
                        "sequence_number": 0,
                        "response": _resp_in_progress,
                    },
                ),
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": 1,
                        "item_id": "msg_1",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": "hi",
                        "logprobs": [],
                    },
                ),
                (
                    "response.completed",
                    {
                        "type": "response.completed",
                        "sequence_number": 2,
                        "response": _response(RESP_USAGE),
                    },
                ),
            ]
        ),
        "gpt-5.6-sol",
        RESP_EXPECT,
    ),
    Case(
        "anthropic-json",
        Api.ANTHROPIC_MESSAGES,
        False,
        json.dumps(_message("claude-opus-5-5", ANT_USAGE)).encode(),
        "claude-opus-5-5",
        ANT_EXPECT,
        base_url="https://api.anthropic.com",
    ),
    Case(
        "anthropic-sse",
        Api.ANTHROPIC_MESSAGES,
        True,
        sse(ANT_SSE_EVENTS),
        "claude-opus-5-5",
        ANT_EXPECT,
        base_url="https://api.anthropic.com",
    ),
    Case(
        "anthropic-beta-iterations",
        Api.ANTHROPIC_MESSAGES,
        False,
        json.dumps(_message("claude-sonnet-4-5", ANT_ITER_USAGE)).encode(),
        "claude-sonnet-4-5",
        ANT_ITER_EXPECT,
        base_url="https://api.anthropic.com",
        beta=True,
    ),
    Case(
        "deepseek-chat-json",
        Api.OPENAI_CHAT,
        False,
        json.dumps(_chat("deepseek-v4-flash", DEEPSEEK_USAGE)).encode(),
        "deepseek-v4-flash",
        {
            "input_tokens": 9000,
            "uncached_input_tokens": 2600,
            "cache_read_tokens": 6400,
            "cache_write_tokens": 0,
            "cache_write_tokens_by_ttl": {},
            "output_tokens": 300,
            "reasoning_tokens": 0,
        },
        base_url="https://api.deepseek.com",
    ),
    Case(
        "xai-chat-json",
        Api.OPENAI_CHAT,
        False,
        json.dumps(_chat("grok-4.7", XAI_USAGE)).encode(),
        "grok-4.7",
        {
            "input_tokens": 4000,
            "uncached_input_tokens": 1000,
            "cache_read_tokens": 3000,
            "cache_write_tokens": 0,
            "cache_write_tokens_by_ttl": {},
            "output_tokens": 900,
            "reasoning_tokens": 800,
        },
        base_url="https://api.x.ai/v1",
    ),
    Case(
        "gemini-compat-chat-json",
        Api.OPENAI_CHAT,
        False,
        json.dumps(_chat("gemini-3.5-flash", GEMINI_USAGE)).encode(),
        "gemini-3.5-flash",
        {
            "input_tokens": 7000,
            "uncached_input_tokens": 2904,
            "cache_read_tokens": 4096,
            "cache_write_tokens": 0,
            "cache_write_tokens_by_ttl": {},
            "output_tokens": 250,
            "reasoning_tokens": 0,
        },
        base_url="https://generativelanguage.googleapis.com/v1beta/openai",
    ),
]

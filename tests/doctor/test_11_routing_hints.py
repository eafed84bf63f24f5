"""Routing overflow and withheld hints: provider behaviour the emulator does not model (yet).

A ``httpx2.MockTransport`` plays an OpenAI endpoint that bills every prompt as uncached, the
way overflow routing or a gateway without cache hints looks from the app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import openai

import promptcache
from promptcache.testing import FakeClock

from .kit import SYSTEM, kinds, one


def _never_cached(request: httpx2.Request) -> httpx2.Response:
    body = json.loads(request.content)
    tokens = len(request.content) // 4
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": tokens,
                "completion_tokens": 1,
                "total_tokens": tokens + 1,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        },
    )


def _client(base_url: str, pc: promptcache.PromptCache) -> tuple[openai.OpenAI, openai.OpenAI]:
    raw = openai.OpenAI(
        base_url=base_url,
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_never_cached)),
    )
    return raw, pc.wrap(raw)


def _ask(client: openai.OpenAI, i: int) -> Any:
    return client.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"q{i}"}],
    )


def test_routing_overflow_above_15_per_minute(tmp_path: Path) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    pc = promptcache.PromptCache(tmp_path, response_cache=False, clock=clock.now)
    raw, client = _client("https://api.openai.com/v1", pc)
    for i in range(20):
        clock.advance(2)  # 30 per minute, one prefix, one key
        _ask(client, i)
    found = pc.doctor()
    f = one(found, "routing_overflow")
    assert f.evidence.rate_per_min is not None and f.evidence.rate_per_min > 15
    assert f.count == 20 - 15
    # Below the limit the same misses stay unexplained: nothing pretends to know more.
    assert one(found, "unexplained").count == 14
    raw.close()
    pc.close()


def test_hints_withheld_on_a_compatible_base_url(tmp_path: Path) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    pc = promptcache.PromptCache(tmp_path, response_cache=False, clock=clock.now)
    raw, client = _client("https://llm-gateway.example.com/v1", pc)
    for i in range(3):
        clock.advance(30)
        _ask(client, i)
    found = pc.doctor()
    assert kinds(found) == ["hints_withheld"]
    f = found[0]
    assert f.evidence.host == "llm-gateway.example.com"
    assert "endpoint='openai'" in f.fix
    raw.close()
    pc.close()


def test_no_hint_finding_once_the_key_is_sent(tmp_path: Path) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    pc = promptcache.PromptCache(
        tmp_path,
        response_cache=False,
        clock=clock.now,
        openai=promptcache.OpenAIOptions(endpoint="openai"),
    )
    raw, client = _client("https://llm-gateway.example.com/v1", pc)
    for i in range(3):
        clock.advance(30)
        _ask(client, i)
    assert kinds(pc.doctor()) == ["unexplained"]
    raw.close()
    pc.close()

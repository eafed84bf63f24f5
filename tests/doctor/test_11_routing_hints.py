"""Routing overflow and withheld hints, against the emulator's overflow routing and strict mode.

The emulator routes OpenAI requests by model, prefix and ``prompt_cache_key``: above 15 a
minute for one routing key the rest lands on cold overflow machines (``ServedCall.machine``).
The planner shards a family above that rate by default; the doctor must explain the misses
when it does not, and stay quiet when it does. Hints the planner withheld come from its own
records (``DefaultPlanner.withheld()``), not from a guess about the host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import promptcache
from promptcache._plan import DefaultPlanner, WithheldHints
from promptcache.testing import Emulator, FakeClock, StrictServer

from .kit import SYSTEM, kinds, one

GATEWAY = "https://llm-gateway.example.com/v1"
PROXY = "llm-proxy.corp.example"
LLAMA = "meta-llama/Llama-3.1-70B-Instruct"


def _withheld(pc: promptcache.PromptCache) -> list[WithheldHints]:
    planner = pc.planner
    assert isinstance(planner, DefaultPlanner)
    return planner.withheld()


def _pc(emu: Emulator, tmp_path: Path, **openai_options: Any) -> promptcache.PromptCache:
    return promptcache.PromptCache(
        tmp_path,
        response_cache=False,
        clock=emu.clock.now,
        openai=promptcache.OpenAIOptions(**openai_options),
    )


@contextmanager
def _client(emu: Emulator, pc: promptcache.PromptCache, base_url: str) -> Iterator[openai.OpenAI]:
    # The SDK keeps the production (or gateway) base URL; the transport reaches the emulator.
    raw = openai.OpenAI(
        base_url=base_url,
        api_key="x",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=emu.transport()),
    )
    try:
        yield pc.wrap(raw)
    finally:
        raw.close()


def _ask(client: openai.OpenAI, i: int, model: str = "gpt-4.1", **kw: Any) -> Any:
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"q{i}"}],
        **kw,
    )


def _one_a_second(emu: Emulator, client: openai.OpenAI, n: int, **kw: Any) -> None:
    for i in range(n):
        _ask(client, i, **kw)
        emu.clock.advance(1)


# --- routing overflow ------------------------------------------------------------------------


def test_routing_overflow_when_sharding_is_off(emulator: Emulator, tmp_path: Path) -> None:
    pc = _pc(emulator, tmp_path, routing_limit_per_minute=None)
    with _client(emulator, pc, "https://api.openai.com/v1") as client:
        _one_a_second(emulator, client, 60)
    calls = emulator.calls
    assert len({c.prompt_cache_key for c in calls}) == 1  # one key: nothing spread it
    overflowed = [c for c in calls[1:] if c.machine != 0 and c.cache_read_tokens == 0]
    assert len(overflowed) >= 40  # ground truth: 15 a minute at home, the rest cold
    found = pc.doctor()
    assert kinds(found) == ["routing_overflow"]
    f = found[0]
    assert f.count == len(overflowed)
    assert f.evidence.rate_per_min is not None and f.evidence.rate_per_min > 15
    assert "routing_limit_per_minute=15" in f.fix and "None" in f.fix
    assert f.cost is not None and f.cost > 0
    pc.close()


def test_no_routing_finding_when_the_planner_shards(emulator: Emulator, tmp_path: Path) -> None:
    pc = _pc(emulator, tmp_path)  # routing_limit_per_minute=15: the default
    with _client(emulator, pc, "https://api.openai.com/v1") as client:
        _one_a_second(emulator, client, 120)
    calls = emulator.calls
    keys = {c.prompt_cache_key for c in calls}
    assert len(keys) >= 4  # the family went out under several shard keys
    # Each shard pays one cold start; after the first minute every request reads.
    assert all(c.cache_read_tokens > 0 for c in calls[70:])
    assert sum(c.cache_read_tokens == 0 for c in calls) <= len(keys) + 1
    # Cold shards are the planner's choice, and a shard key is no "scope change".
    assert pc.doctor() == []
    pc.close()


def test_routing_fix_when_restructure_is_off(emulator: Emulator, tmp_path: Path) -> None:
    pc = promptcache.PromptCache(
        tmp_path, response_cache=False, clock=emulator.clock.now, restructure="off"
    )
    with _client(emulator, pc, "https://api.openai.com/v1") as client:
        _one_a_second(emulator, client, 40)
    assert {c.prompt_cache_key for c in emulator.calls} == {None}  # sent as written
    f = one(pc.doctor(), "routing_overflow")
    assert "no prompt_cache_key" in f.summary
    assert "restructure='safe'" in f.fix
    pc.close()


def test_a_new_key_in_a_sharded_family_is_still_a_scope_change(
    emulator: Emulator, tmp_path: Path
) -> None:
    pc = _pc(emulator, tmp_path)
    with _client(emulator, pc, "https://api.openai.com/v1") as client:
        _one_a_second(emulator, client, 40, prompt_cache_key="tenant-1")
        assert len({c.prompt_cache_key for c in emulator.calls}) >= 3  # sharded
        assert pc.doctor() == []
        _ask(client, 99, prompt_cache_key="tenant-2")
    assert emulator.calls[-1].cache_read_tokens == 0
    f = one(pc.doctor(), "scope_changed")
    assert f.evidence.fields == ("prompt_cache_key",) and f.count == 1
    pc.close()


def test_routing_fix_names_shard_user_keys(emulator: Emulator, tmp_path: Path) -> None:
    pc = _pc(emulator, tmp_path, shard_user_keys=False)
    with _client(emulator, pc, "https://api.openai.com/v1") as client:
        _one_a_second(emulator, client, 40, prompt_cache_key="tenant-1")
    assert {c.prompt_cache_key for c in emulator.calls} == {"tenant-1"}
    f = one(pc.doctor(), "routing_overflow")
    assert "shard_user_keys=True" in f.fix
    assert "'tenant-1'" in f.summary
    pc.close()


# --- hints withheld ----------------------------------------------------------------------------


def test_gateway_to_an_openai_model_gets_hints(emulator: Emulator, tmp_path: Path) -> None:
    pc = _pc(emulator, tmp_path)
    with _client(emulator, pc, GATEWAY) as client:
        for i in range(4):
            _ask(client, i, model="gpt-5.6-sol")
            emulator.clock.advance(30)
    calls = emulator.calls
    assert all(c.host == "llm-gateway.example.com" and c.prompt_cache_key for c in calls)
    assert all(c.cache_read_tokens > 0 for c in calls[1:])
    assert pc.doctor() == []
    assert _withheld(pc) == []
    pc.close()


def test_declared_compatible_with_an_openai_model(emulator: Emulator, tmp_path: Path) -> None:
    pc = _pc(emulator, tmp_path, endpoint="compatible")
    with _client(emulator, pc, GATEWAY) as client:
        for i in range(4):
            _ask(client, i, model="gpt-5.6-sol")
            emulator.clock.advance(30)
    calls = emulator.calls
    assert all(c.prompt_cache_key is None for c in calls)
    # gpt-5.6 without breakpoints writes only at the end: the next question reads nothing.
    assert all(c.cache_read_tokens == 0 for c in calls)
    found = pc.doctor()
    assert kinds(found) == ["hints_withheld"]
    f = found[0]
    assert f.count == 3
    assert f.evidence.host == "llm-gateway.example.com"
    assert "prompt_cache_key" in f.evidence.fields
    assert 'endpoint="compatible"' in f.summary
    assert 'OpenAIOptions(endpoint="openai")' in f.fix
    pc.close()


def test_hints_dropped_after_a_strict_server_refused(emulator: Emulator, tmp_path: Path) -> None:
    emulator.strict = StrictServer("openai", hosts=frozenset({PROXY}))
    pc = _pc(emulator, tmp_path)
    with _client(emulator, pc, f"https://{PROXY}/v1") as client:
        with pytest.warns(promptcache.HintRejectedWarning):
            _ask(client, 0, model="gpt-5.6-sol")
        for i in range(1, 4):
            emulator.clock.advance(30)
            _ask(client, i, model="gpt-5.6-sol")
    served = [c for c in emulator.calls if c.status == 200]
    assert len(served) == 4 and all(c.cache_read_tokens == 0 for c in served)
    assert any(c.status == 400 for c in emulator.calls)
    found = pc.doctor()
    assert kinds(found) == ["hints_withheld"]
    f = found[0]
    assert f.evidence.host == PROXY
    assert "refused" in f.summary and "dropped them after the refusal" in f.summary
    pc.close()


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


def test_no_hint_finding_for_a_non_openai_model(tmp_path: Path) -> None:
    # A vLLM server of a llama model: OpenAI's hints are withheld, and rightly — sending them
    # would gain nothing. Its misses stay unexplained rather than blamed on the hints.
    clock = FakeClock(start=1_800_000_000.0)
    price = promptcache.ModelPrice(
        input_mtok=Decimal("0.5"),
        output_mtok=Decimal("0.5"),
        cache_read_mtok=Decimal("0.25"),
        cache_write_mtok=None,
    )
    pc = promptcache.PromptCache(
        tmp_path, response_cache=False, clock=clock.now, prices={LLAMA: price}
    )
    raw = openai.OpenAI(
        base_url="http://vllm.internal:8000/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_never_cached)),
    )
    client = pc.wrap(raw)
    for i in range(3):
        clock.advance(30)
        _ask(client, i, model=LLAMA)
    records = _withheld(pc)
    assert [r.reason for r in records] == ["not_openai"]
    assert kinds(pc.doctor()) == ["unexplained"]
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
    raw = openai.OpenAI(
        base_url=GATEWAY,
        api_key="x",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_never_cached)),
    )
    client = pc.wrap(raw)
    for i in range(3):
        clock.advance(30)
        _ask(client, i)
    assert kinds(pc.doctor()) == ["unexplained"]
    raw.close()
    pc.close()

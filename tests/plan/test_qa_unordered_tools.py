"""QA: tools listed in a new order on every call must not be written again and again (safe)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

import promptcache
from promptcache.testing import Emulator, FakeClock

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "sigma",
    "omega",
]


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def _tools() -> list[dict[str, Any]]:
    rng = random.Random(3)
    return [
        {
            "name": f"tool_{i}",
            "description": " ".join(rng.choice(WORDS) for _ in range(90)),
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
        for i in range(15)
    ]


def test_safe_mode_stops_writing_when_tool_order_changes_every_call(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = promptcache.PromptCache(
        directory=tmp_path / "pc", response_cache=False, restructure="safe", clock=clock.now
    )
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    tools = _tools()
    system = "You are an agent.\n" + " ".join(random.Random(1).choice(WORDS) for _ in range(600))
    msgs: list[Any] = [{"role": "user", "content": "Task: find the answer."}]
    try:
        for k in range(14):
            order: list[Any] = list(tools)
            random.Random(1000 + k).shuffle(order)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=16,
                system=system,
                tools=order,
                messages=msgs,
            )
            msgs = [
                *msgs,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": f"t{k}", "name": "tool_1", "input": {"q": "x"}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": f"t{k}",
                            "content": " ".join(WORDS) * 20,
                        }
                    ],
                },
            ]
    finally:
        pc.close()
        raw.close()
    calls = [c for c in emu.calls if c.status == 200]
    assert len(calls) == 14
    assert sum(c.cache_read_tokens for c in calls) == 0  # nothing could ever be read
    writing = [i for i, c in enumerate(calls) if c.cache_write_tokens]
    # The first call speculates and the second is still benefit of the doubt; no later call
    # may pay for a write that no request will read.
    assert writing and max(writing) <= 1, writing
    # The user's tool order goes out untouched in safe mode.
    sent = calls[-1].request_body
    assert sent is not None
    assert [t["name"] for t in sent["tools"]] != sorted(t["name"] for t in tools)

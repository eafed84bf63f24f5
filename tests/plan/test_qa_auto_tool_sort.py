"""QA: auto mode's tool sorting must not move the app's own breakpoint off the last tool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

import promptcache
from promptcache.testing import Emulator, FakeClock


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def test_user_breakpoint_on_the_last_tool_still_covers_every_tool(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = promptcache.PromptCache(
        directory=tmp_path / "pc", response_cache=False, restructure="auto", clock=clock.now
    )
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    tools: list[Any] = [
        {"name": n, "description": f"{n} does things. " * 150, "input_schema": {"type": "object"}}
        for n in ("zeta", "alpha", "mid")
    ]
    # The usual way to cache all tool definitions: a breakpoint on the last one.
    tools[-1] = {**tools[-1], "cache_control": {"type": "ephemeral"}}
    try:
        for i in range(2):
            clock.advance(1)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                tools=tools,
                messages=[{"role": "user", "content": f"question {i}"}],
            )
    finally:
        pc.close()
        raw.close()
    for call in emu.calls:
        assert call.status == 200
        assert call.request_body is not None
        sent = call.request_body["tools"]
        # The tool the app put its breakpoint on is still the last one, so it covers them all.
        assert sent[-1]["name"] == "mid" and "cache_control" in sent[-1], [t["name"] for t in sent]
        assert sorted(t["name"] for t in sent) == ["alpha", "mid", "zeta"]
    assert emu.calls[1].cache_read_tokens > 0

"""QA: a 1h write the user's own 5m breakpoint forces down to 5m is dropped, not downgraded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

import promptcache
from promptcache.testing import Emulator, FakeClock

LONG = "You are a careful assistant who follows the house rules exactly. " * 120  # ~2k tokens


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def test_calls_7_minutes_apart_after_a_user_5m_breakpoint_write_nothing_extra(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = promptcache.PromptCache(
        directory=tmp_path / "pc", response_cache=False, restructure="safe", clock=clock.now
    )
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    system: Any = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]
    msgs: list[Any] = []
    try:
        for k in range(6):
            msgs.append({"role": "user", "content": f"Question {k}: " + "tell me more. " * 60})
            clock.advance(7 * 60)  # every 5m entry has expired by the next call
            client.messages.create(
                model="claude-sonnet-5", max_tokens=5, system=system, messages=list(msgs)
            )
            msgs.append({"role": "assistant", "content": "Answer " + "blah " * 60})
    finally:
        pc.close()
        raw.close()
    calls = [c for c in emu.calls if c.status == 200]
    assert len(calls) == 6
    system_tokens = calls[0].cache_write_tokens
    assert system_tokens > 0  # the user's own 5m breakpoint, written as they asked
    # After the first calls the planner knows 5m entries expire unread: ours would have to be
    # 5m (after the user's 5m), so it adds none, and only the user's system write remains.
    assert all(c.cache_write_tokens <= system_tokens for c in calls[3:]), [
        c.cache_write_tokens for c in calls
    ]

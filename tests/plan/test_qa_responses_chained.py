"""QA: Responses chained with previous_response_id keep dynamic text inside ``instructions``.

The server stores the input items of a chained conversation but replaces ``instructions`` on
every turn. Moving dynamic instruction text into a trailing input item would therefore leave
each turn's copy in the stored history: the model would see every earlier time stamp too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import promptcache
from promptcache._plan import OpenAIOptions
from promptcache.testing import Emulator, FakeClock

LONG = "You are a careful assistant who follows the house rules exactly. " * 120  # ~2k tokens


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


@pytest.mark.parametrize("mode", ["safe", "auto"])
def test_dynamic_instructions_stay_put_when_the_conversation_is_stored(
    emu: Emulator, clock: FakeClock, tmp_path: Path, mode: str
) -> None:
    pc = promptcache.PromptCache(
        directory=tmp_path / "pc",
        response_cache=False,
        restructure=mode,  # type: ignore[arg-type]
        clock=clock.now,
        openai=OpenAIOptions(endpoint="openai"),
    )
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    try:
        prev = client.responses.create(
            model="gpt-6.1-sol", instructions=LONG, input="Start the task."
        ).id
        for k in range(3):
            clock.advance(60)
            now = f"Current time: 2026-11-28 12:0{k}:00\n"
            prev = client.responses.create(
                model="gpt-6.1-sol",
                instructions=LONG + promptcache.dynamic(now),
                input=f"Step {k}.",
                previous_response_id=prev,
            ).id
    finally:
        pc.close()
        raw.close()
    for call in emu.calls[1:]:
        body = call.request_body
        assert body is not None
        # The time line is still in the instructions, exactly once, and not in the input.
        assert body["instructions"].count("Current time:") == 1
        assert "Current time:" not in str(body["input"])

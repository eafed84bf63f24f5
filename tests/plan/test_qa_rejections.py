"""QA: a 400 caused by the user's own cache settings must not be blamed on the endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
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


@pytest.fixture()
def pc(tmp_path: Path, clock: FakeClock) -> Iterator[promptcache.PromptCache]:
    p = promptcache.PromptCache(
        directory=tmp_path / "pc",
        response_cache=False,
        restructure="safe",
        clock=clock.now,
        openai=OpenAIOptions(endpoint="openai"),
    )
    yield p
    p.close()


def _turns(n: int) -> Iterator[list[Any]]:
    msgs: list[Any] = []
    for k in range(n):
        msgs.append({"role": "user", "content": f"Question {k}: " + "explain more please. " * 20})
        yield list(msgs)
        msgs.append({"role": "assistant", "content": "Answer " + "blah " * 40})


def test_users_own_bad_cache_control_does_not_disable_planning_for_the_endpoint(
    emu: Emulator, clock: FakeClock, pc: promptcache.PromptCache
) -> None:
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    try:
        # The user's own mistake: a 1h breakpoint after a 5m one. Their 400 to see.
        with pytest.raises(anthropic.BadRequestError):
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=[
                    {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}},
                    {
                        "type": "text",
                        "text": "More rules.",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    },
                ],
                messages=[{"role": "user", "content": "hi"}],
            )
        start = len(emu.calls)
        for msgs in _turns(4):
            clock.advance(1)
            client.messages.create(
                model="claude-sonnet-5", max_tokens=5, system=LONG, messages=msgs
            )
    finally:
        raw.close()
    later = emu.calls[start:]
    assert [c.status for c in later] == [200] * 4
    # Planning still works: each turn reads what the previous one wrote.
    assert all(c.cache_read_tokens > 0 for c in later[1:])


def test_users_own_breakpoint_on_an_old_model_is_neither_removed_nor_blamed(
    emu: Emulator, clock: FakeClock, pc: promptcache.PromptCache
) -> None:
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    try:
        # gpt-5.5 rejects prompt_cache_breakpoint: the user's own setting, so the user's 400.
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="gpt-5.5",
                messages=[
                    {
                        "role": "system",
                        "content": [
                            {
                                "type": "text",
                                "text": LONG,
                                "prompt_cache_breakpoint": {"mode": "explicit"},
                            }
                        ],
                    },
                    {"role": "user", "content": "hi"},
                ],
            )
        start = len(emu.calls)
        client.chat.completions.create(
            model="gpt-6.1-sol",
            messages=[{"role": "system", "content": LONG}, {"role": "user", "content": "hi"}],
        )
    finally:
        raw.close()
    sent = emu.calls[start].request_body
    assert sent is not None
    # Explicit caching on gpt-5.6+ and the cache key were not switched off for the endpoint.
    assert sent.get("prompt_cache_options") == {"mode": "explicit"}
    assert isinstance(sent.get("prompt_cache_key"), str)

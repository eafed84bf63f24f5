"""Anthropic prompt-caching rules, driven through the real anthropic SDK (PROVIDERS.md §3.1)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from promptcache.testing import Emulator, anthropic_minimum

MODEL = "claude-sonnet-5"  # minimum 1,024 tokens
SYSTEM = "Follow the house style guide. " * 200  # 6,000 bytes -> 1,500 tokens (+4 header)
SYSTEM_TOKENS = 1504
EPHEMERAL: Any = {"type": "ephemeral"}
HOUR: Any = {"type": "ephemeral", "ttl": "1h"}


def _system(cc: Any = EPHEMERAL, text: str = SYSTEM) -> Any:
    return [{"type": "text", "text": text, "cache_control": cc}]


def _ask(client: anthropic.Anthropic, question: str = "q", **kw: Any) -> Any:
    kw.setdefault("model", MODEL)
    kw.setdefault("max_tokens", 50)
    kw.setdefault("system", _system())
    kw.setdefault("messages", [{"role": "user", "content": question}])
    return client.messages.create(**kw)


def test_write_then_read(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    first = _ask(client, "first")
    assert first.usage.cache_creation_input_tokens == SYSTEM_TOKENS
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == SYSTEM_TOKENS
    assert first.usage.cache_read_input_tokens == 0
    second = _ask(client, "second")
    assert second.usage.cache_read_input_tokens == SYSTEM_TOKENS
    assert second.usage.cache_creation_input_tokens == 0
    # input_tokens excludes cached and written tokens; the ledger's input is inclusive.
    # Tokens are ceil(bytes / 4) of the cumulative rendering: the system block ends at byte
    # 6,016; the user header + "second" + the 16-byte reply primer bring it to 6,054 -> 1,514.
    assert second.usage.input_tokens == 1514 - SYSTEM_TOKENS
    call = emulator.calls[-1]
    assert call.input_tokens == SYSTEM_TOKENS + second.usage.input_tokens
    assert call.cache_read_tokens == SYSTEM_TOKENS
    assert call.uncached_input_tokens == second.usage.input_tokens
    assert emulator.calls[0].cache_write_by_ttl == {"5m": SYSTEM_TOKENS}


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("claude-opus-5", 512),
        ("claude-sonnet-5", 1024),
        ("claude-opus-4-7", 2048),
        ("claude-haiku-4-5", 4096),
        ("claude-haiku-4-5-20251001", 4096),
        ("claude-new-9", 1024),
    ],
)
def test_minimum_per_model(
    emulator: Emulator, model: str, minimum: int, ant: anthropic.Anthropic
) -> None:
    assert anthropic_minimum(model) == minimum
    client = ant
    # Just below and just above the minimum (system header is 4 tokens).
    below = "b" * ((minimum - 5) * 4)
    above = "a" * ((minimum - 4) * 4)
    low = _ask(client, model=model, system=_system(text=below))
    assert low.usage.cache_creation_input_tokens == 0  # silently not cached, no error
    assert _ask(client, model=model, system=_system(text=below)).usage.cache_read_input_tokens == 0
    high = _ask(client, model=model, system=_system(text=above))
    assert high.usage.cache_creation_input_tokens == minimum


def test_more_than_four_breakpoints_is_a_400(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    system = [{"type": "text", "text": f"part {i}", "cache_control": EPHEMERAL} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as info:
        _ask(client, system=system)
    assert info.value.status_code == 400
    body: Any = info.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "maximum of 4 blocks with cache_control" in body["error"]["message"]
    # The automatic top-level form takes one of the four slots.
    with pytest.raises(anthropic.BadRequestError):
        _ask(client, system=system[:4], cache_control=EPHEMERAL)
    assert emulator.calls[-1].status == 400
    assert emulator.calls[-1].error_type == "invalid_request_error"


def test_1h_after_5m_is_a_400_and_longer_first_is_fine(
    emulator: Emulator, ant: anthropic.Anthropic
) -> None:
    client = ant
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": HOUR}]}
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        _ask(client, system=_system(EPHEMERAL), messages=messages)
    assert "ttl='1h'" in str(info.value)
    ok = _ask(client, system=_system(HOUR), messages=[{"role": "user", "content": "q"}])
    assert ok.usage.cache_creation.ephemeral_1h_input_tokens == SYSTEM_TOKENS


def test_mixed_ttl_billing_positions(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    tool: Any = {
        "name": "lookup",
        "description": "Look things up. " * 300,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "cache_control": HOUR,
    }
    tools_tokens = (
        client.messages.count_tokens(
            model=MODEL, tools=[tool], messages=[{"role": "user", "content": "x"}]
        ).input_tokens
        - 4
        - 1
        - 4
    )  # minus the message (header + 1 token) and reply primer
    first = _ask(client, tools=[tool], system=_system(EPHEMERAL))
    # A = 0 (nothing cached), B = end of tools (1h), C = end of system (5m).
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == tools_tokens
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == SYSTEM_TOKENS
    # Six minutes later the 5m system entry is gone, the 1h tools entry is not.
    emulator.clock.advance(360)
    later = _ask(client, tools=[tool], system=_system(EPHEMERAL))
    assert later.usage.cache_read_input_tokens == tools_tokens
    assert later.usage.cache_creation.ephemeral_5m_input_tokens == SYSTEM_TOKENS
    assert later.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert emulator.calls[-1].cache_write_by_ttl == {"5m": SYSTEM_TOKENS}


def test_ttl_expiry_and_refresh_on_read(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    _ask(client)
    emulator.clock.advance(299)
    assert _ask(client).usage.cache_read_input_tokens == SYSTEM_TOKENS  # refreshes to +5m
    emulator.clock.advance(299)
    assert _ask(client).usage.cache_read_input_tokens == SYSTEM_TOKENS
    emulator.clock.advance(301)
    expired = _ask(client)
    assert expired.usage.cache_read_input_tokens == 0
    assert expired.usage.cache_creation_input_tokens == SYSTEM_TOKENS
    # A 1h entry survives what a 5m one does not.
    _ask(client, system=_system(HOUR, text=SYSTEM + " hour"))
    emulator.clock.advance(1800)
    assert (
        _ask(client, system=_system(HOUR, text=SYSTEM + " hour")).usage.cache_read_input_tokens > 0
    )


def test_thinking_block_cannot_carry_cache_control(
    emulator: Emulator, ant: anthropic.Anthropic
) -> None:
    client = ant
    messages: Any = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "thinking",
                    "thinking": "hmm",
                    "signature": "s",
                    "cache_control": EPHEMERAL,
                },
                {"type": "text", "text": "a"},
            ],
        },
        {"role": "user", "content": "more"},
    ]
    with pytest.raises(anthropic.BadRequestError) as info:
        _ask(client, messages=messages)
    assert "messages.1.content.0.thinking.cache_control" in str(info.value)
    with pytest.raises(anthropic.BadRequestError):
        _ask(
            client,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "", "cache_control": EPHEMERAL}],
                }
            ],
        )


def test_automatic_cache_control_follows_the_conversation(
    emulator: Emulator, ant: anthropic.Anthropic
) -> None:
    client = ant
    messages: list[Any] = [{"role": "user", "content": "turn 0 " + "w" * 400}]
    first = _ask(client, system=SYSTEM, messages=messages, cache_control=EPHEMERAL)
    written = first.usage.cache_creation_input_tokens
    assert written > SYSTEM_TOKENS + 100
    assert first.usage.input_tokens == 4  # only the reply primer is left uncached
    messages += [
        {"role": "assistant", "content": first.content[0].text},
        {"role": "user", "content": "turn 1"},
    ]
    second = _ask(client, system=SYSTEM, messages=messages, cache_control=EPHEMERAL)
    assert second.usage.cache_read_input_tokens == written
    assert second.usage.cache_creation_input_tokens > 0
    assert second.usage.input_tokens == 4


def test_twenty_block_lookback(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    base: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "start", "cache_control": EPHEMERAL}]}
    ]

    def grown(extra: int) -> list[Any]:
        blocks: list[Any] = [{"type": "text", "text": f"b{i}"} for i in range(extra)]
        blocks[-1] = dict(blocks[-1], cache_control=EPHEMERAL)
        return [{"role": "user", "content": [{"type": "text", "text": "start"}, *blocks]}]

    _ask(client, system=SYSTEM, messages=base)
    # Breakpoint 19 blocks after the cached one: within the 20-block window.
    near = _ask(client, system=SYSTEM, messages=grown(19))
    assert near.usage.cache_read_input_tokens > 0
    emulator.reset()
    _ask(client, system=SYSTEM, messages=base)
    # 20 blocks after: the window (breakpoint block + 19 before) no longer reaches it.
    far = _ask(client, system=SYSTEM, messages=grown(20))
    assert far.usage.cache_read_input_tokens == 0


def test_tool_change_invalidates_everything(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    tool_a: Any = {"name": "a", "input_schema": {"type": "object"}}
    tool_b: Any = {"name": "b", "input_schema": {"type": "object"}}
    _ask(client, tools=[tool_a])
    assert _ask(client, tools=[tool_a]).usage.cache_read_input_tokens > 0
    assert _ask(client, tools=[tool_b]).usage.cache_read_input_tokens == 0


def test_system_change_invalidates_system_and_messages(
    emulator: Emulator, ant: anthropic.Anthropic
) -> None:
    client = ant
    _ask(client)
    changed = _ask(client, system=_system(text=SYSTEM.replace("house", "HOUSE", 1)))
    assert changed.usage.cache_read_input_tokens == 0


@pytest.mark.parametrize(
    "change",
    [
        {"tool_choice": {"type": "any"}},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
    ],
)
def test_tool_choice_and_thinking_invalidate_messages_level_only(
    emulator: Emulator, change: dict[str, Any], ant: anthropic.Anthropic
) -> None:
    client = ant
    tool: Any = {"name": "lookup", "input_schema": {"type": "object"}}
    long_turn: Any = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "m" * 6000, "cache_control": EPHEMERAL}],
        }
    ]
    _ask(client, tools=[tool], messages=long_turn, max_tokens=2000)
    same = _ask(client, tools=[tool], messages=long_turn, max_tokens=2000)
    full = same.usage.cache_read_input_tokens
    assert full > SYSTEM_TOKENS + 1504  # tools + system + the 1,504-token user turn
    changed = _ask(client, tools=[tool], messages=long_turn, max_tokens=2000, **change)
    # The system-level entry still hits; the messages level is rewritten.
    assert changed.usage.cache_read_input_tokens == full - 1504
    assert changed.usage.cache_creation_input_tokens == 1504


def test_max_tokens_zero_prewarms(emulator: Emulator, ant: anthropic.Anthropic) -> None:
    client = ant
    warm = _ask(client, max_tokens=0)
    assert warm.content == []
    assert warm.stop_reason == "max_tokens"
    assert warm.usage.output_tokens == 0
    assert warm.usage.cache_creation_input_tokens == SYSTEM_TOKENS
    assert _ask(client).usage.cache_read_input_tokens == SYSTEM_TOKENS


async def test_async_client_sees_the_same_cache(
    emulator: Emulator, aant: anthropic.AsyncAnthropic
) -> None:
    client = aant
    kwargs: Any = dict(
        model=MODEL, max_tokens=20, system=_system(), messages=[{"role": "user", "content": "q"}]
    )
    first = await client.messages.create(**kwargs)
    async with client.messages.stream(**kwargs) as stream:
        final = await stream.get_final_message()
    assert first.usage.cache_creation_input_tokens == SYSTEM_TOKENS
    assert final.usage.cache_read_input_tokens == SYSTEM_TOKENS

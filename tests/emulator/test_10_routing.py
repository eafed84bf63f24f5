"""OpenAI overflow routing in the emulator, through the real openai SDK (PROVIDERS.md §2.1).

OpenAI routes by a hash of the prompt's first ~256 tokens plus ``prompt_cache_key``; above
about 15 requests a minute for one prefix and key, overflow goes to other machines whose caches
are separate, so reads drop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from promptcache.testing import Emulator, FakeClock, OpenAISettings, ServedCall

DOC = "Clause: the tenant shall keep the premises in good repair. " * 100  # ~1.5k tokens


def _run(
    per_minute: float,
    n: int,
    *,
    model: str = "gpt-4.1",
    keys: list[str | None] | None = None,
    settings: OpenAISettings | None = None,
    system: Any = DOC,
) -> list[ServedCall]:
    """Send ``n`` questions over one document at ``per_minute``; return the served calls."""
    clock = FakeClock()
    with (
        Emulator(clock=clock, openai=settings) as emu,
        openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as client,
    ):
        for i in range(n):
            key = (keys or ["tenant"])[i % len(keys or ["tenant"])]
            extra: dict[str, Any] = {} if key is None else {"prompt_cache_key": key}
            client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": f"Question {i}: what does the lease say?"},
                ],
                **extra,
            )
            clock.advance(60.0 / per_minute)
        return emu.calls


def _read_share(calls: list[ServedCall]) -> float:
    return sum(c.cache_read_tokens for c in calls) / sum(c.input_tokens for c in calls)


def test_sixty_a_minute_reads_much_less_than_ten_a_minute() -> None:
    slow = _run(10, 60)  # six minutes
    fast = _run(60, 60)  # one minute
    assert all(c.machine == 0 for c in slow)
    assert _read_share(slow) > 0.9
    # 15 of the first 60 land on the home machine; 45 overflow to machines that are cold.
    assert sum(c.machine == 0 for c in fast) == 15
    assert _read_share(fast) < 0.3
    home_reads = [c.cache_read_tokens for c in fast if c.machine == 0]
    assert home_reads[0] == 0 and all(r > 0 for r in home_reads[1:])


def test_overflow_is_deterministic() -> None:
    a = _run(60, 40)
    b = _run(60, 40)
    assert [(c.machine, c.cache_read_tokens) for c in a] == [
        (c.machine, c.cache_read_tokens) for c in b
    ]
    assert len({c.machine for c in a if c.machine}) > 20  # spread over the pool


def test_the_limit_is_per_sliding_minute() -> None:
    at_limit = _run(15, 45)
    assert all(c.machine == 0 for c in at_limit)  # exactly 15 a minute: no overflow
    above = _run(20, 45)
    overflow = [i for i, c in enumerate(above) if c.machine]
    # 15 fit in the first minute (t = 0 … 42 s); then one in four overflows, steadily.
    assert overflow[0] == 15
    assert 8 <= len(overflow) <= 12


def test_the_limit_is_a_setting() -> None:
    off = _run(60, 40, settings=OpenAISettings(routing_limit_per_minute=None))
    assert all(c.machine == 0 for c in off)
    assert _read_share(off) > 0.9
    wider = _run(60, 40, settings=OpenAISettings(routing_limit_per_minute=30))
    assert sum(c.machine == 0 for c in wider) == 30
    with pytest.raises(ValueError, match="routing_limit_per_minute"):
        OpenAISettings(routing_limit_per_minute=0)
    with pytest.raises(ValueError, match="overflow_machines"):
        OpenAISettings(overflow_machines=0)


def test_each_key_has_its_own_budget() -> None:
    keys: list[str | None] = ["shard-0", "shard-1", "shard-2", "shard-3", "shard-4"]
    spread = _run(60, 60, keys=keys)
    assert all(c.machine == 0 for c in spread)  # 12 a minute per key
    # One cold write per key, every later call reads.
    assert sum(c.cache_read_tokens == 0 for c in spread) == len(keys)


def test_routing_hashes_only_the_first_256_tokens() -> None:
    # Same first 256 tokens, different tails: one routing key, one budget of 15.
    clock = FakeClock()
    with (
        Emulator(clock=clock) as emu,
        openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as client,
    ):
        for i in range(20):
            tail = f"Appendix {i % 2}: " + ("extra terms. " * 200)
            client.chat.completions.create(
                model="gpt-4.1",
                messages=[
                    {"role": "system", "content": DOC + tail},
                    {"role": "user", "content": "q"},
                ],
                prompt_cache_key="k",
            )
        assert sum(c.machine == 0 for c in emu.calls) == 15
        # A prompt whose first 256 tokens differ is routed on its own budget.
        client.chat.completions.create(
            model="gpt-4.1",
            messages=[
                {"role": "system", "content": "Other. " + DOC},
                {"role": "user", "content": "q"},
            ],
            prompt_cache_key="k",
        )
        assert emu.calls[-1].machine == 0


def test_gpt56_without_a_key_shares_one_budget_per_prefix() -> None:
    # No prompt_cache_key: routing by the prefix alone, so all key-less traffic with this head
    # shares one budget; the cache rules themselves are unchanged (PROVIDERS.md says only that
    # the key is needed "to use the more reliable matching").
    marked = [{"type": "text", "text": DOC, "prompt_cache_breakpoint": {"mode": "explicit"}}]
    calls = _run(60, 30, model="gpt-5.6-sol", keys=[None], system=marked)
    assert sum(c.machine == 0 for c in calls) == 15
    home = [c for c in calls if c.machine == 0]
    assert home[0].cache_write_tokens > 0 and all(c.cache_read_tokens > 0 for c in home[1:])
    # Overflow machines are cold: they write again (billed 1.25x on gpt-5.6+).
    assert sum(c.cache_write_tokens > 0 for c in calls if c.machine) >= 14


def test_served_call_json_carries_the_machine() -> None:
    calls = _run(60, 16)
    assert calls[-1].machine > 0
    assert calls[-1].to_json()["machine"] == calls[-1].machine


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    with Emulator(clock=FakeClock()) as e:
        yield e


def test_anthropic_is_not_routed(emu: Emulator) -> None:
    with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0) as c:
        for i in range(30):
            c.messages.create(
                model="claude-sonnet-5",
                max_tokens=10,
                system=[{"type": "text", "text": DOC, "cache_control": {"type": "ephemeral"}}],
                messages=[{"role": "user", "content": f"q{i}"}],
            )
    assert all(c.machine == 0 for c in emu.calls)
    assert all(c.cache_read_tokens > 0 for c in emu.calls[1:])


def test_reset_forgets_the_rate(emu: Emulator) -> None:
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0) as c:
        ask: Any = {
            "model": "gpt-4.1",
            "messages": [{"role": "system", "content": DOC}, {"role": "user", "content": "q"}],
        }
        for _ in range(16):
            c.chat.completions.create(**ask)
        assert emu.calls[-1].machine > 0
        emu.reset()
        c.chat.completions.create(**ask)
        assert emu.calls[-1].machine == 0

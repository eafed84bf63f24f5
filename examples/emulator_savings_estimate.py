"""Estimate what prompt caching saves on a workload, offline, before going live.

Replays a support-bot workload (one shared manual, a question every 40 seconds) against the
emulator with and without a cache breakpoint and compares the billed input tokens. Multiply by
your model's prices to get dollars.

    python examples/emulator_savings_estimate.py
"""

from __future__ import annotations

from typing import Any

import anthropic

from promptcache.testing import Emulator, FakeClock

MANUAL = "Section 4.2: returns are accepted within 30 days with a receipt. " * 400
QUESTIONS = [f"Customer question number {i}: can I return item {i}?" for i in range(20)]


def run(cache: bool) -> dict[str, int]:
    system: Any = [{"type": "text", "text": MANUAL}]
    if cache:
        system[0]["cache_control"] = {"type": "ephemeral"}
    with (
        Emulator(clock=FakeClock()) as emu,
        anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="offline") as client,
    ):
        for question in QUESTIONS:
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=200,
                system=system,
                messages=[{"role": "user", "content": question}],
            )
            emu.clock.advance(40)
        calls = emu.calls
    return {
        "input": sum(c.input_tokens for c in calls),
        "uncached": sum(c.uncached_input_tokens for c in calls),
        "read": sum(c.cache_read_tokens for c in calls),
        "written": sum(c.cache_write_tokens for c in calls),
    }


def main() -> None:
    without, with_cache = run(cache=False), run(cache=True)
    # Relative input cost with typical multipliers: write 1.25x, read 0.1x (check your model's).
    cost_without = without["uncached"]
    cost_with = with_cache["uncached"] + 1.25 * with_cache["written"] + 0.1 * with_cache["read"]
    print(f"without caching: {without}")
    print(f"with caching:    {with_cache}")
    print(f"input cost with caching: {cost_with / cost_without:.0%} of the uncached cost")


if __name__ == "__main__":
    main()

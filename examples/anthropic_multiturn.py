"""A growing Anthropic conversation: each turn reads from the provider cache what the last wrote.

The app sends a long system prompt and the whole history every turn, with no ``cache_control``
anywhere. With ``restructure="safe"`` (the default) promptcache adds the breakpoints, so each
turn reads the previous turn's prefix and writes only what is new; with ``"off"`` the request
goes out as written and nothing is cached. The numbers are the emulator's ground truth
(``emu.calls``) and the ledger's dollars.

    python examples/anthropic_multiturn.py
"""

from __future__ import annotations

import tempfile

import anthropic

import promptcache
from promptcache.testing import Emulator, FakeClock

# About 3,200 tokens: well above the minimum prefix claude-sonnet-4-6 caches.
SYSTEM = "You are the travel assistant of Globex. Follow the booking policy below.\n" + (
    "Policy: rebook free within 24 hours; refunds go to the original card. " * 180
)
QUESTIONS = ["Can I change my flight?", "And the hotel?", "What about a refund?", "Thanks!"]


def converse(mode: str, emu: Emulator, clock: FakeClock) -> None:
    emu.reset()
    pc = promptcache.PromptCache(directory=tempfile.mkdtemp(), restructure=mode, clock=clock.now)
    bare = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="sk-offline")
    client = pc.wrap(bare)
    history: list[dict[str, str]] = []
    print(f'\nrestructure="{mode}"')
    print("turn  input  read from cache  written to cache  uncached  reads last turn's prefix")
    previous = 0  # what the previous turn read plus what it wrote
    for turn, question in enumerate(QUESTIONS, 1):
        history.append({"role": "user", "content": question})
        reply = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=200, system=SYSTEM, messages=history
        )
        history.append({"role": "assistant", "content": reply.content[0].text})
        call = emu.calls[-1]
        print(
            f"{turn:>4}  {call.input_tokens:>5}  {call.cache_read_tokens:>15}"
            f"  {call.cache_write_tokens:>16}  {call.uncached_input_tokens:>8}"
            f"  {'yes' if previous and call.cache_read_tokens == previous else '-'}"
        )
        previous = call.cache_read_tokens + call.cache_write_tokens
        clock.advance(20)  # the user types for 20 seconds
    s = pc.ledger.summary()
    print(
        f"read share {s.read_share:.0%}; paid ${s.cost:.4f} instead of "
        f"${s.cost_without_provider_cache:.4f} (saved ${s.saved_by_provider_cache:.4f})"
    )
    bare.close()
    pc.close()


def main() -> None:
    clock = FakeClock()
    with Emulator(clock=clock) as emu:
        converse("safe", emu, clock)
        converse("off", emu, clock)


if __name__ == "__main__":
    main()

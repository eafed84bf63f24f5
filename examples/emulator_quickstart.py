"""Offline quick start: both SDKs against the built-in emulator, first call writes, next reads.

python examples/emulator_quickstart.py
"""

from __future__ import annotations

import anthropic
import openai

from promptcache.testing import Emulator, FakeClock

SYSTEM = "You are a meticulous support agent for ACME. " * 120  # ~1,350 tokens


def main() -> None:
    with Emulator(clock=FakeClock()) as emu:
        with anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="offline") as claude:
            for question in ["Where is my order?", "Can I return it?"]:
                msg = claude.messages.create(
                    model="claude-sonnet-5",
                    max_tokens=100,
                    system=[
                        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}
                    ],
                    messages=[{"role": "user", "content": question}],
                )
                u = msg.usage
                print(
                    f"anthropic  input={u.input_tokens:>5}  written={u.cache_creation_input_tokens}"
                    f"  read={u.cache_read_input_tokens}"
                )
        with openai.OpenAI(base_url=emu.openai_base_url, api_key="offline") as gpt:
            for model in ["gpt-4o", "gpt-4o", "gpt-5.6-sol", "gpt-5.6-sol"]:
                resp = gpt.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": "Where is my order?"},
                    ],
                )
                assert resp.usage is not None and resp.usage.prompt_tokens_details is not None
                d = resp.usage.prompt_tokens_details
                print(
                    f"{model:<11} prompt={resp.usage.prompt_tokens:>5}  cached={d.cached_tokens}"
                    f"  written={d.cache_write_tokens}"
                )
        print("\nground truth (inclusive input, read, writes by TTL):")
        for call in emu.calls:
            print(
                f"  {call.api:<20} {call.model:<16} {call.input_tokens:>5} "
                f"{call.cache_read_tokens:>5} {call.cache_write_by_ttl}"
            )


if __name__ == "__main__":
    main()

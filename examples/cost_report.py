"""Where the money goes: tag calls, attribute them to app functions, and report.

Calls are attributed with ``with promptcache.tag(...)`` blocks and ``@promptcache.track`` on
app functions; the ledger then answers ``summary()`` (optionally filtered) and ``group_by()``,
and ``promptcache report`` prints the same figures as a table. Every number is a real price
for the model used (the emulator bills like the provider).

    python examples/cost_report.py
"""

from __future__ import annotations

import tempfile

import anthropic
import openai

import promptcache
import promptcache.cli
from promptcache.testing import Emulator, FakeClock

HANDBOOK = "Returns are accepted within 30 days with the receipt. " * 300  # ~4k tokens


@promptcache.track  # calls made while it runs are attributed to "__main__.answer_ticket"
def answer_ticket(client: anthropic.Anthropic, ticket: str) -> str:
    reply = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        system=HANDBOOK,
        messages=[{"role": "user", "content": ticket}],
    )
    return reply.content[0].text


@promptcache.track(name="weekly-digest")
def digest(client: openai.OpenAI, topic: str) -> str | None:
    messages = [{"role": "system", "content": HANDBOOK}, {"role": "user", "content": topic}]
    reply = client.chat.completions.create(model="gpt-5.5", messages=messages)
    return reply.choices[0].message.content


def main() -> None:
    directory = tempfile.mkdtemp()
    clock = FakeClock()
    with Emulator(clock=clock) as emu:
        # endpoint="openai": treat the emulator as OpenAI itself (adds a prompt_cache_key).
        openai_options = promptcache.OpenAIOptions(endpoint="openai")
        pc = promptcache.PromptCache(directory=directory, clock=clock.now, openai=openai_options)
        claude = pc.wrap(anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="sk-a"))
        gpt = pc.wrap(openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-o"))
        with promptcache.tag("support"):
            for ticket in ["Refund?", "Broken item", "Refund?", "Late parcel"]:
                answer_ticket(claude, ticket)  # the repeated ticket is served locally
                clock.advance(30)
        with promptcache.tag("marketing"):
            for topic in ["returns", "shipping", "returns"]:
                digest(gpt, topic)
        print(f"upstream calls (emulator): {len(emu.calls)}")

        ledger = pc.ledger
        s = ledger.summary()
        print(f"all:     {s.requests} requests, {s.local_hits} local hits, paid ${s.cost:.4f}")
        print(f"         without any caching ${s.cost_without_cache:.4f}; saved ${s.saved:.4f}")
        print(f"         provider cache: read {s.cache_read_tokens:,} of {s.input_tokens:,} tokens")
        support = ledger.summary(tag="support")
        print(f"support: {support.requests} requests, paid ${support.cost:.4f}")
        for function, g in ledger.group_by("function").items():
            print(f"  function {function:<24} {g.requests} requests  paid ${g.cost:.4f}")
        pc.close()  # flushes the ledger

    print("\n$ promptcache report --by tag --no-chart")
    promptcache.cli.main(["report", "--dir", directory, "--by", "tag", "--no-chart"])


if __name__ == "__main__":
    main()

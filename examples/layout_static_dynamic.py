"""Keep a changing timestamp out of the cached prefix: static/dynamic marks and auto mode.

The system prompt starts with the current time, so its first bytes change on every call and
the provider cache never hits. Four ways to send it, each three calls a minute apart, with the
provider cache reads of each call (from ``emu.calls``):

1. as written (``"off"``, or the default ``"safe"``, which never moves text by itself):
   nothing is read back;
2. ``promptcache.static(...)`` / ``promptcache.dynamic(...)`` marks: the time moves after the
   cached prefix;
3. the same with ``@promptcache.layout(static=[...])`` on the prompt-building function;
4. ``restructure="auto"`` with no marks at all: promptcache spots the timestamp line itself.

    python examples/layout_static_dynamic.py
"""

from __future__ import annotations

import tempfile

import anthropic

import promptcache
from promptcache.testing import Emulator, FakeClock

RULES = "You are the support assistant of Acme. Answer from the manual, briefly. " * 150


def plain(rules: str, now: str) -> str:
    return f"Current time: {now}\n{rules}"


def marked(rules: str, now: str) -> str:
    return f"{promptcache.dynamic(f'Current time: {now}')}\n{promptcache.static(rules)}"


@promptcache.layout(static=["rules"])  # every other string argument is dynamic
def decorated(rules: str, now: str) -> str:
    return f"Current time: {now}\n{rules}"


def run(label: str, mode: str, build, emu: Emulator, clock: FakeClock) -> None:
    emu.reset()
    pc = promptcache.PromptCache(directory=tempfile.mkdtemp(), restructure=mode, clock=clock.now)
    bare = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="sk-offline")
    client = pc.wrap(bare)
    for minute in range(3):
        client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=50,
            system=build(RULES, f"2026-11-28T10:{minute:02d}:00Z"),
            messages=[{"role": "user", "content": f"Question {minute}?"}],
        )
        clock.advance(60)
    reads = [c.cache_read_tokens for c in emu.calls]
    inputs = sum(c.input_tokens for c in emu.calls)
    print(f"{label:<34} cache reads per call {reads}  ({sum(reads) / inputs:.0%} of input)")
    bare.close()
    pc.close()


def main() -> None:
    clock = FakeClock()
    with Emulator(clock=clock) as emu:
        run("1. as written, restructure=off", "off", plain, emu, clock)
        run("   the same, restructure=safe", "safe", plain, emu, clock)
        run("2. static()/dynamic() marks", "safe", marked, emu, clock)
        sent = emu.calls[-1].request_body
        print("   system prompt now starts with:", repr(sent["system"][0]["text"][:40]))
        print("   the time went to the last turn:", repr(sent["messages"][-1]["content"][-1]))
        run("3. @promptcache.layout", "safe", decorated, emu, clock)
        run("4. restructure=auto, no marks", "auto", plain, emu, clock)


if __name__ == "__main__":
    main()

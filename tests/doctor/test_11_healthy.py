"""Healthy workloads: the doctor stays silent (no false alarms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import promptcache
from promptcache.testing import Emulator

from .kit import SYSTEM, claude, gpt, pc_for


def test_first_call_of_a_family(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    with claude(emulator, pc) as client:
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            system=SYSTEM,
            messages=[{"role": "user", "content": "q"}],
        )
    assert pc.doctor() == []
    pc.close()


def test_steady_single_turn_apps(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    with claude(emulator, pc) as ant, gpt(emulator, pc) as oai:
        for i in range(8):
            emulator.clock.advance(30)
            q = f"Question {i}: where is order {1000 + i}?"
            ant.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=SYSTEM,
                messages=[{"role": "user", "content": q}],
            )
            for model, name in (("gpt-4.1", "Ada"), ("gpt-6.1-sol", "Bea")):
                # One prompt family per model (the first call of a new model in a family is
                # a real one-time miss: scope_changed, tested elsewhere).
                oai.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": f"You are {name}. {SYSTEM}"},
                        {"role": "user", "content": q},
                    ],
                )
    assert sum(c.cache_read_tokens > 0 for c in emulator.calls) == 3 * 7
    emulator.clock.advance(3600)
    assert pc.doctor() == []
    pc.close()


def test_conversations_sharing_a_system_prompt(emulator: Emulator, tmp_path: Path) -> None:
    # Each conversation's last turn writes for a next turn that never comes: that alone is
    # no "writes never read" problem.
    pc = pc_for(emulator, tmp_path, "safe")
    with claude(emulator, pc) as client:
        for conv in range(4):
            history: list[Any] = []
            for turn in range(5):
                emulator.clock.advance(15)
                history.append({"role": "user", "content": f"c{conv} t{turn}: " + "more. " * 60})
                client.messages.create(
                    model="claude-sonnet-5", max_tokens=5, system=SYSTEM, messages=history
                )
                history.append({"role": "assistant", "content": "Sure. " * 20})
    emulator.clock.advance(3600)
    assert pc.doctor() == []
    pc.close()


def test_responses_conversation(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    items: list[Any] = [{"role": "user", "content": "Find the report. " * 50}]
    with gpt(emulator, pc) as client:
        for turn in range(4):
            emulator.clock.advance(20)
            client.responses.create(model="gpt-6.1-sol", instructions=SYSTEM, input=items)
            items = [
                *items,
                {"role": "assistant", "content": "Searching. " * 30},
                {"role": "user", "content": f"Turn {turn}: go on. " * 20},
            ]
    assert all(c.cache_read_tokens > 0 for c in emulator.calls[1:])
    assert pc.doctor() == []
    pc.close()


def test_retention_settings(emulator: Emulator, tmp_path: Path) -> None:
    # Gaps longer than the default lifetimes, inside the lifetime the app chose: reads, and
    # no "TTL lapsed" from a doctor that assumed the default.
    pc = pc_for(emulator, tmp_path, "safe", anthropic=promptcache.AnthropicOptions(ttl="1h"))
    with claude(emulator, pc) as ant, gpt(emulator, pc) as oai:
        for i in range(3):
            emulator.clock.advance(15 * 60)
            ant.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=SYSTEM,
                messages=[{"role": "user", "content": f"q{i}"}],
            )
            oai.chat.completions.create(
                model="gpt-4.1",
                prompt_cache_retention="24h",
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"q{i}"},
                ],
            )
    reads = [c.cache_read_tokens > 0 for c in emulator.calls]
    assert reads == [False, False, True, True, True, True]
    assert pc.doctor() == []
    pc.close()


def test_unique_one_off_prompts(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    with claude(emulator, pc) as client:
        for i in range(6):
            emulator.clock.advance(20)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=f"Persona {'abcdefgh'[i]}. " + SYSTEM,
                messages=[{"role": "user", "content": "q"}],
            )
    emulator.clock.advance(3600)
    assert pc.doctor() == []
    pc.close()

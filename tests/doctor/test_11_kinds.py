"""An emulator scenario per kind of finding: the doctor names the right cause, with evidence."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import anthropic
import pytest

from promptcache.testing import Emulator

from .kit import SHORT, SYSTEM, claude, gpt, kinds, one, pc_for


def test_prefix_changed_names_the_timestamp_in_a_single_turn_app(
    emulator: Emulator, tmp_path: Path
) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    with gpt(emulator, pc) as client:
        for i in range(3):
            emulator.clock.advance(30)
            client.chat.completions.create(
                model="gpt-4.1",
                messages=[
                    {
                        "role": "system",
                        "content": f"Current time: 2026-12-04T10:0{i}:00Z\n{SYSTEM}",
                    },
                    {"role": "user", "content": f"Question {i}?"},
                ],
            )
    f = one(pc.doctor(), "prefix_changed")
    assert [c.cache_read_tokens for c in emulator.calls] == [0, 0, 0]
    ev = f.evidence
    assert ev.block == "message 0" and ev.volatile == "timestamp"
    assert ev.char_offset == len("Current time: 2026-12-04T10:0")
    assert ev.before is not None and "10:01" in ev.before
    assert ev.after is not None and "10:02" in ev.after
    assert f.count == 2 and f.cost is not None and f.cost > 0
    # What was missed is the system prompt the first call cached (the emulator's own count).
    assert abs(f.missed_tokens - 2 * emulator.calls[0].input_tokens) < 0.1 * f.missed_tokens
    assert "restructure='auto'" in f.fix
    pc.close()


def test_prefix_changed_in_an_earlier_turn_of_a_conversation(
    emulator: Emulator, tmp_path: Path
) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    history: list[Any] = [{"role": "user", "content": "Tell me about caching. " * 20}]
    with claude(emulator, pc) as client:
        for turn in range(3):
            emulator.clock.advance(20)
            client.messages.create(
                model="claude-sonnet-5", max_tokens=5, system=SYSTEM, messages=history
            )
            history = [*history, {"role": "assistant", "content": "ok"}]
            history.append({"role": "user", "content": f"more {turn}"})
        # The app rewrites its first user turn (a summary, an edit): the history changed.
        history[0] = {"role": "user", "content": "Tell me about CACHING. " * 20}
        emulator.clock.advance(20)
        client.messages.create(
            model="claude-sonnet-5", max_tokens=5, system=SYSTEM, messages=history
        )
    f = one(pc.doctor(), "prefix_changed")
    assert f.evidence.block == "message 0" and f.evidence.char_offset == len("Tell me about ")
    assert f.evidence.volatile is None
    assert f.evidence.cached_tokens == emulator.calls[-1].cache_read_tokens
    pc.close()


def test_below_minimum(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    system: Any = [{"type": "text", "text": SHORT, "cache_control": {"type": "ephemeral"}}]
    with claude(emulator, pc) as client:
        for i in range(2):
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=system,
                messages=[{"role": "user", "content": f"q{i}"}],
            )
    assert all(c.cache_read_tokens == 0 and not c.cache_write_by_ttl for c in emulator.calls)
    f = one(pc.doctor(), "below_minimum")
    assert f.evidence.min_tokens == 1024
    assert f.evidence.prefix_tokens is not None and 300 < f.evidence.prefix_tokens < 1024
    pc.close()


def test_ttl_lapsed(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    with claude(emulator, pc) as client:
        for gap in (0, 60, 400):
            emulator.clock.advance(gap)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=SYSTEM,
                messages=[{"role": "user", "content": f"after {gap}s"}],
            )
    assert emulator.calls[1].cache_read_tokens > 0 and emulator.calls[2].cache_read_tokens == 0
    found = pc.doctor()
    assert kinds(found) == ["ttl_lapsed"]
    f = found[0]
    assert f.evidence.gap_s == 400 and f.evidence.ttl_s == 300
    assert f.missed_tokens > 1500
    pc.close()


def test_scope_changed_model_and_tool_order(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    tools: list[Any] = [
        {"type": "function", "function": {"name": n, "description": "Look it up. " * 30}}
        for n in ("orders", "refunds", "stock", "users")
    ]
    with gpt(emulator, pc) as client:

        def ask(model: str, order: int) -> None:
            emulator.clock.advance(10)
            listed = list(tools)
            random.Random(order).shuffle(listed)
            client.chat.completions.create(
                model=model,
                tools=listed,
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "hi"},
                ],
            )

        ask("gpt-4.1", 1)
        ask("gpt-4.1", 1)  # a read
        ask("gpt-4.1", 2)  # tools in another order
        ask("gpt-4o", 2)  # another model
    assert emulator.calls[1].cache_read_tokens > 0
    found = pc.doctor()
    assert kinds(found) == ["scope_changed"]
    fields = sorted(f.evidence.fields for f in found)
    assert fields == [("model",), ("tools order",)]
    pc.close()


def test_breakpoints_none_at_all(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    with claude(emulator, pc) as client:
        for i in range(2):
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=SYSTEM,
                messages=[{"role": "user", "content": f"q{i}"}],
            )
    f = one(pc.doctor(), "breakpoints")
    assert f.evidence.breakpoints == 0 and "restructure='safe'" in f.fix
    pc.close()


def test_breakpoint_only_at_the_end_is_never_read(emulator: Emulator, tmp_path: Path) -> None:
    # The app marks its last block (a habit from the docs) on prompts whose last block varies:
    # every call writes the whole prompt and nothing is ever read. Two findings: where the
    # breakpoints are, and what the writes cost.
    pc = pc_for(emulator, tmp_path, "off")
    with claude(emulator, pc) as client:
        for i in range(4):
            emulator.clock.advance(30)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=SYSTEM,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "text",
                                "text": f"question {i}",
                                "cache_control": {"type": "ephemeral"},
                            }
                        ],
                    }
                ],
            )
    assert all(c.cache_read_tokens == 0 for c in emulator.calls)
    found = pc.doctor()
    f = one(found, "breakpoints")
    assert "only at its end" in f.summary and f.count == 3
    assert "writes_never_read" not in kinds(found)  # their lifetime has not passed yet
    emulator.clock.advance(301)
    waste = one(pc.doctor(), "writes_never_read")
    written = sum(c.cache_write_by_ttl.get("5m", 0) for c in emulator.calls)
    assert waste.evidence.written_tokens == written and waste.count == 4
    assert waste.cost is not None and waste.cost > 0
    pc.close()


def test_breakpoints_moved_beyond_the_lookback(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off")
    cc: Any = {"type": "ephemeral"}
    first: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": SYSTEM, "cache_control": cc}]}
    ]
    # 24 tool round trips later, the app marks only the new end: 48 blocks past the entry.
    later: list[Any] = [{"role": "user", "content": [{"type": "text", "text": SYSTEM}]}]
    for i in range(24):
        later.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": f"t{i}", "name": "f", "input": {}}],
            }
        )
        later.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"}],
            }
        )
    later[-1]["content"][0]["cache_control"] = cc
    tool: Any = {"name": "f", "input_schema": {"type": "object"}}
    with claude(emulator, pc) as client:
        client.messages.create(model="claude-sonnet-5", max_tokens=5, tools=[tool], messages=first)
        emulator.clock.advance(10)
        client.messages.create(model="claude-sonnet-5", max_tokens=5, tools=[tool], messages=later)
    assert emulator.calls[1].cache_read_tokens == 0
    f = one(pc.doctor(), "breakpoints")
    assert "lookback" in f.summary or "20 blocks" in f.summary
    pc.close()


def test_breakpoint_overflow_from_the_apps_own_cache_control(
    emulator: Emulator, tmp_path: Path
) -> None:
    pc = pc_for(emulator, tmp_path, "safe")
    cc: Any = {"type": "ephemeral"}
    system: Any = [
        {"type": "text", "text": f"Part {i}. " + SYSTEM, "cache_control": cc} for i in range(4)
    ]
    with claude(emulator, pc) as client, pytest.raises(anthropic.BadRequestError):
        # Four of its own plus the automatic one: five, and the provider says 400.
        client.messages.create(
            model="claude-sonnet-5",
            max_tokens=5,
            system=system,
            cache_control=cc,
            messages=[{"role": "user", "content": "q"}],
        )
    f = one(pc.doctor(), "breakpoints")
    assert f.evidence.breakpoints == 5 and "rejects" in f.summary
    pc.close()


def test_prefix_changed_when_a_tool_output_changes_shape(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The same function_call_output sent as a string, then as a list of parts: the same text
    # to a person, other bytes to the provider (what issue 10 (b) is about).
    pc = pc_for(emulator, tmp_path, "off")
    head: list[Any] = [
        {"role": "user", "content": "Find the report. " * 50},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ]
    rows = "row " * 300
    with gpt(emulator, pc) as client:
        client.responses.create(
            model="gpt-4.1",
            instructions=SYSTEM,
            input=[*head, {"type": "function_call_output", "call_id": "c1", "output": rows}],
        )
        emulator.clock.advance(20)
        client.responses.create(
            model="gpt-4.1",
            instructions=SYSTEM,
            input=[
                *head,
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_text", "text": rows}],
                },
                {"role": "user", "content": "and?"},
            ],
        )
    f = one(pc.doctor(), "prefix_changed")
    assert f.evidence.block == "message 2"
    assert emulator.calls[1].cache_read_tokens < emulator.calls[0].input_tokens - 200
    pc.close()

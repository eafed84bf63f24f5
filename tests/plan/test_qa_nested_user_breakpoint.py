"""QA: the app's breakpoint nested inside a tool_result counts for the 1h-before-5m rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

import promptcache
from promptcache.testing import Emulator, FakeClock

LONG = "You are a careful assistant who follows the house rules exactly. " * 120  # ~2k tokens


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as e:
        yield e


def _ttls_in_order(body: dict[str, Any]) -> list[str]:
    # Anthropic processes tools, then system, then messages, each depth-first.
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            cc = x.get("cache_control")
            if isinstance(cc, dict):
                out.append(str(cc.get("ttl") or "5m"))
            for k, v in x.items():
                if k != "cache_control":
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for key in ("tools", "system", "messages"):
        walk(body.get(key))
    return out


def test_no_1h_breakpoint_after_the_apps_nested_5m_one(
    emu: Emulator, clock: FakeClock, tmp_path: Path
) -> None:
    pc = promptcache.PromptCache(
        directory=tmp_path / "pc", response_cache=False, restructure="safe", clock=clock.now
    )
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    msgs: list[Any] = [
        {"role": "user", "content": "Task: go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "tu0", "name": "look", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "tu0",
                    "content": [
                        {
                            "type": "text",
                            "text": "result " * 50,
                            "cache_control": {"type": "ephemeral"},  # the app's own, 5m
                        }
                    ],
                }
            ],
        },
    ]
    try:
        for k in range(5):
            clock.advance(7 * 60)  # gaps past 5 minutes: the planner wants 1h writes
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=5,
                system=LONG,
                tools=[{"name": "look", "description": "d", "input_schema": {"type": "object"}}],
                messages=list(msgs),
            )
            msgs.append({"role": "assistant", "content": "Answer " + "blah " * 40})
            msgs.append({"role": "user", "content": f"Question {k}: " + "explain more. " * 20})
    finally:
        pc.close()
        raw.close()
    for call in emu.calls:
        assert call.status == 200
        assert call.request_body is not None
        ttls = _ttls_in_order(call.request_body)
        assert len(ttls) <= 4
        first_5m = ttls.index("5m")
        assert "1h" not in ttls[first_5m:], ttls

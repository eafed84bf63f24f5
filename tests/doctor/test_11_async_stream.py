"""The doctor sees streamed and async calls too (usage from the SSE stream's end)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anthropic
import openai

from promptcache.testing import Emulator

from .kit import SYSTEM, pc_for


def test_async_streams(emulator: Emulator, tmp_path: Path) -> None:
    pc = pc_for(emulator, tmp_path, "off")

    async def run() -> None:
        async with (
            openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key="x") as o_raw,
            anthropic.AsyncAnthropic(base_url=emulator.anthropic_base_url, api_key="x") as a_raw,
        ):
            gpt, claude = pc.wrap(o_raw), pc.wrap(a_raw)
            cc: Any = {"type": "ephemeral"}
            for i in range(3):
                emulator.clock.advance(30)
                stream = await gpt.chat.completions.create(
                    model="gpt-4.1",
                    stream=True,
                    stream_options={"include_usage": True},
                    messages=[
                        {"role": "system", "content": f"Now: 2026-12-04 10:0{i}\n{SYSTEM}"},
                        {"role": "user", "content": "q"},
                    ],
                )
                async for _ in stream:
                    pass
                async with claude.messages.stream(
                    model="claude-sonnet-5",
                    max_tokens=5,
                    system=[{"type": "text", "text": f"Run {i}.\n{SYSTEM}", "cache_control": cc}],
                    messages=[{"role": "user", "content": "q"}],
                ) as s:
                    await s.get_final_message()

    asyncio.run(run())
    found = pc.doctor()
    oai = [f for f in found if f.api == "openai.chat"]
    assert len(oai) == 1 and oai[0].kind == "prefix_changed" and oai[0].count == 2
    assert oai[0].evidence.volatile == "timestamp"
    ant = [f for f in found if f.api == "anthropic.messages"]
    assert len(ant) == 1 and ant[0].kind == "prefix_changed" and ant[0].count == 2
    assert ant[0].evidence.volatile == "counter"
    pc.close()

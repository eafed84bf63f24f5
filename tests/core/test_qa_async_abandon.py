"""QA regression: an async stream abandoned mid-way (no close) shuts down cleanly.

With the bare SDK, ``async for chunk in stream: break`` and forgetting the stream is quiet at
loop shutdown. Through a wrapped client the loop often reported "aclose(): asynchronous
generator is already running": the transport's tee was an async generator that awaited inside
its ``GeneratorExit`` handler while the loop was closing the generators under it.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import openai
import pytest

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator


def _abandon_once(emu: Emulator, pc: PromptCache | None, n: int) -> list[str]:
    async def main() -> None:
        base = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        client = base if pc is None else pc.wrap(base)
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"hi {n}"}], stream=True
        )
        async for _ in stream:
            break
        del stream
        gc.collect()
        await base.close()

    errors: list[dict[str, Any]] = []
    with asyncio.Runner() as runner:
        runner.get_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        runner.run(main())
    return [str(e.get("exception") or e.get("message")) for e in errors]


@pytest.mark.xfail(
    reason="open QA finding: the tee's inner response generators are closed concurrently with "
    "the outer ones at loop shutdown; not fixed yet",
    strict=False,
)
def test_abandoned_async_streams_shut_down_cleanly(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        # The order the loop closes generators in varies: several runs catch it reliably.
        bare = [err for n in range(12) for err in _abandon_once(emu, None, n)]
        wrapped = [err for n in range(12) for err in _abandon_once(emu, pc, n)]
    assert bare == []
    assert wrapped == []

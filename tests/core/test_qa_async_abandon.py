"""QA regression: an async stream abandoned mid-way (no close) shuts down cleanly.

``async for chunk in stream: break``, forgetting the stream and ending the loop leaves live
async generators for ``loop.shutdown_asyncgens()``, which closes them all at once. httpx2 chains
its generators (one's close awaits the next one's), so a close can find the next one "already
running" and the loop logs "an error occurred during closing of asynchronous generator". The
bare SDK does this too, now and then (httpx2/httpcore2's own chain). Through a wrapped client it
was the common case: the transport's tee was an async generator over the inner response. Our
stream classes now hand httpx2 plain async iterators, so nothing of ours is left to the loop.
"""

from __future__ import annotations

import asyncio
import gc
import traceback
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator

_PACKAGE = str(Path(promptcache.__file__).resolve().parent)


def _abandon_once(emu: Emulator, pc: PromptCache | None, n: int) -> list[dict[str, Any]]:
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
    return errors


def _ours(ctx: dict[str, Any]) -> bool:
    """Whether a loop error involves promptcache's code (its generator or a frame of ours)."""
    agen = ctx.get("asyncgen")
    code = getattr(agen, "ag_code", None)
    if code is not None and str(Path(code.co_filename).resolve()).startswith(_PACKAGE):
        return True
    exc = ctx.get("exception")
    frames = traceback.extract_tb(exc.__traceback__) if isinstance(exc, BaseException) else []
    return any(str(Path(f.filename).resolve()).startswith(_PACKAGE) for f in frames)


def _describe(errors: list[dict[str, Any]]) -> list[str]:
    return [f"{e.get('asyncgen')!r}: {e.get('exception') or e.get('message')}" for e in errors]


def test_abandoned_async_streams_leave_nothing_of_ours_to_the_loop(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        # The order the loop closes generators in varies: many runs. Before the fix about a
        # third of the runs logged an error on the tee's own generator.
        errors = [err for n in range(20) for err in _abandon_once(emu, pc, n)]
        # Every abandoned call still went upstream once and nothing hung.
        assert len(emu.calls) == 20
    assert _describe([e for e in errors if _ours(e)]) == []


@pytest.mark.xfail(
    reason="upstream: httpx2/httpcore2 chain their async generators, and the loop's "
    "shutdown_asyncgens closes them concurrently; the bare SDK logs 'aclose(): asynchronous "
    "generator is already running' for an abandoned stream too (about a third of the runs here)",
    strict=False,
)
def test_abandoned_async_streams_shut_down_without_any_error(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        bare = [err for n in range(12) for err in _abandon_once(emu, None, n)]
        wrapped = [err for n in range(12) for err in _abandon_once(emu, pc, n)]
    assert _describe(bare) == []
    assert _describe(wrapped) == []

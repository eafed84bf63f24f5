"""QA regression: closing a wrapped client must not leak the connections of the one it wraps.

``async with promptcache.wrap(openai.AsyncOpenAI()) as client:`` leaves the user no other
handle on the original client; closing the wrapped one has to release its http client (as
closing any ``with_options`` copy does), as long as the original is not still in use.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator


async def test_async_with_wrapped_inline_client_closes_it(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        async with pc.wrap(
            openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        ) as client:
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
            inner = client._client._promptcache_inner  # type: ignore[attr-defined]
        assert inner.is_closed


def test_with_wrapped_inline_client_closes_it(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        with pc.wrap(
            anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0)
        ) as client:
            client.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
            )
            inner = client._client._promptcache_inner  # type: ignore[attr-defined]
        assert inner.is_closed


async def test_closing_wrapped_keeps_a_live_original_usable(tmp_path: Path) -> None:
    with Emulator() as emu, PromptCache(directory=tmp_path) as pc:
        base = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        await pc.wrap(base).close()
        reply = await base.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        await base.close()

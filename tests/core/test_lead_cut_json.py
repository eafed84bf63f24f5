"""A JSON answer cut mid-body: the SDK raises as it would bare, and the ledger still counts it."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest

import promptcache
from promptcache.testing import Emulator


def test_cut_json_body_is_recorded_and_raises_the_sdk_error(tmp_path: Path) -> None:
    with Emulator() as emu, promptcache.PromptCache(directory=tmp_path / "pc") as pc:
        client = pc.wrap(openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0))
        emu.inject("stream_cut", times=1)
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(
                model="gpt-5.5", messages=[{"role": "user", "content": "cut me"}]
            )
        # Not cached: the same request goes upstream again and succeeds.
        client.chat.completions.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "cut me"}]
        )
        assert len(emu.calls) == 2
        s = pc.ledger.summary()
        assert s.requests == 2
        assert s.local_hits == 0
        assert s.unknown_usage_requests == 1


async def test_cut_json_body_async_is_recorded(tmp_path: Path) -> None:
    with Emulator() as emu, promptcache.PromptCache(directory=tmp_path / "pc") as pc:
        client = pc.wrap(
            anthropic.AsyncAnthropic(base_url=emu.anthropic_base_url, api_key="k", max_retries=0)
        )
        emu.inject("stream_cut", times=1)
        with pytest.raises(anthropic.APIConnectionError):
            await client.messages.create(
                model="claude-sonnet-4-6",
                max_tokens=20,
                messages=[{"role": "user", "content": "cut me"}],
            )
        assert pc.ledger.summary().requests == 1
        await client.close()

"""End to end through promptcache.wrap and the emulator: local hits, tags, unknown usage."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache.testing import Emulator, FakeClock

SYSTEM = "You are a careful assistant. " * 400


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    with Emulator(clock=FakeClock()) as e:
        yield e


def test_local_hits_tags_functions_and_unknown_usage(emu: Emulator, tmp_path: Path) -> None:
    pc = promptcache.PromptCache(directory=tmp_path, restructure="off")
    bare = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    client = pc.wrap(bare)
    msgs: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hello"}]

    @promptcache.track(name="app.ask")
    def ask() -> None:
        client.chat.completions.create(model="gpt-5.6-sol", messages=msgs)

    try:
        with promptcache.tag("support"):
            ask()
            ask()  # identical: served locally
            ask()
        # a stream without include_usage: the provider billed it, but did not say how much
        for _ in client.chat.completions.create(
            model="gpt-5.6-sol", messages=[{"role": "user", "content": "other"}], stream=True
        ):
            pass
        s = pc.ledger.summary()
        first = emu.calls[0]
        expected = (
            first.uncached_input_tokens * 4
            + first.cache_read_tokens * Decimal("0.4")
            + first.cache_write_tokens * 5
            + first.output_tokens * 20
        ) / Decimal(10**6)
        assert s.requests == 4 and s.local_hits == 2 and len(emu.calls) == 2
        assert s.unknown_usage_requests == 1 and s.cost is None
        assert s.cost_known == expected
        assert s.avoided_by_local_hits == 2 * expected
        tagged = pc.ledger.summary(tag="support")
        assert tagged.requests == 3 and tagged.cost == expected
        assert pc.ledger.group_by("function")["app.ask"].local_hits == 2
        # a new PromptCache on the same directory sees the persisted ledger
        other = promptcache.PromptCache(directory=tmp_path)
        assert other.ledger.summary().requests == 4
        other.close()
    finally:
        client.close()
        bare.close()
        pc.close()

"""Cache policy without touching SDK signatures: blocks (context managers) and derived clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import promptcache
from promptcache._policy import current_policy
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.core.test_wrap_kit import (
    RecordingAccountant,
    accountant,
    create_kwargs,
    emu,
    make_client,
    pc,
    planner,
    same,
    served,
)

__all__ = ["accountant", "emu", "pc", "planner"]


def _ask(client: Any, text: str = "policy") -> Any:
    return client.chat.completions.create(**create_kwargs("OpenAI", text))


def test_bypass_block_skips_lookup_and_store(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", emu))
    _ask(client)
    with promptcache.bypass():
        _ask(client)
        _ask(client, "bypassed only")
    assert served(emu) == 3
    _ask(client)  # still the first entry
    _ask(client, "bypassed only")  # never stored
    assert served(emu) == 4


def test_refresh_block_overwrites(
    emu: Emulator, pc: PromptCache, accountant: RecordingAccountant
) -> None:
    client = pc.wrap(make_client("Anthropic", emu))
    kwargs = create_kwargs("Anthropic", "refresh me")
    old = client.messages.create(**kwargs)
    with promptcache.refresh():
        new = client.messages.create(**kwargs)
    again = client.messages.create(**kwargs)
    assert served(emu) == 2
    assert new.id != old.id
    same(new, again)
    assert len(accountant.upstream) == 2 and len(accountant.hits) == 1


def test_read_only_block_serves_but_never_stores(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", emu))
    _ask(client, "stored")
    with promptcache.read_only():
        _ask(client, "stored")
        _ask(client, "not stored")
    _ask(client, "not stored")
    assert served(emu) == 3


def test_derived_client_policy_and_block_wins(emu: Emulator, pc: PromptCache) -> None:
    base = make_client("OpenAI", emu)
    cached = pc.wrap(base)
    fresh = pc.wrap(base, policy="bypass")
    _ask(cached)
    _ask(fresh)
    _ask(fresh.with_options(timeout=5))  # derived clients keep the policy
    assert served(emu) == 3
    with promptcache.read_only():
        _ask(fresh)  # the block wins over the client's policy
    assert served(emu) == 3


async def test_policies_follow_tasks(emu: Emulator, pc: PromptCache) -> None:
    async def inside() -> str:
        await asyncio.sleep(0)
        return current_policy()

    with promptcache.bypass():
        task = asyncio.create_task(inside())
    outside = asyncio.create_task(inside())
    assert await task == "bypass"
    assert await outside == "default"
    with promptcache.refresh(), promptcache.read_only():
        assert current_policy("bypass") == "read_only"
    assert current_policy("bypass") == "bypass"


def test_policy_validation(pc: PromptCache) -> None:
    with pytest.raises(promptcache.ConfigError):
        pc.wrap(object(), policy="sometimes")  # type: ignore[arg-type]

"""Static types survive wrapping: ``assert_type(wrap(OpenAI()), OpenAI)`` (checked by mypy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, assert_type

import anthropic
import openai
import pytest

import promptcache
from promptcache import _wrap
from promptcache._wrap import PromptCache
from tests.core.test_wrap_kit import RecordingAccountant, RecordingPlanner


@pytest.fixture()
def default_cache(pc_dir: Path, monkeypatch: pytest.MonkeyPatch) -> PromptCache:
    cache = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    monkeypatch.setattr(_wrap, "_default", cache)
    return cache


def test_wrap_keeps_static_and_runtime_types(default_cache: PromptCache) -> None:
    o = promptcache.wrap(openai.OpenAI(api_key="x"))
    assert_type(o, openai.OpenAI)
    ao = promptcache.wrap(openai.AsyncOpenAI(api_key="x"))
    assert_type(ao, openai.AsyncOpenAI)
    az = promptcache.wrap(
        openai.AzureOpenAI(api_key="x", api_version="2024-10-21", azure_endpoint="http://a.test")
    )
    assert_type(az, openai.AzureOpenAI)
    aaz = default_cache.wrap(
        openai.AsyncAzureOpenAI(
            api_key="x", api_version="2024-10-21", azure_endpoint="http://a.test"
        )
    )
    assert_type(aaz, openai.AsyncAzureOpenAI)
    a = default_cache.wrap(anthropic.Anthropic(api_key="x"), policy="bypass")
    assert_type(a, anthropic.Anthropic)
    aa = default_cache.wrap(anthropic.AsyncAnthropic(api_key="x"))
    assert_type(aa, anthropic.AsyncAnthropic)
    derived = o.with_options(timeout=3)
    assert_type(derived, openai.OpenAI)
    for obj, cls in [
        (o, openai.OpenAI),
        (ao, openai.AsyncOpenAI),
        (az, openai.AzureOpenAI),
        (aaz, openai.AsyncAzureOpenAI),
        (a, anthropic.Anthropic),
        (aa, anthropic.AsyncAnthropic),
        (derived, openai.OpenAI),
    ]:
        assert isinstance(obj, cls)
    # Static typing of the methods is the SDK's own: completions keep their signatures.
    create: Any = o.chat.completions.create
    assert callable(create)


def test_cached_keeps_the_signature(default_cache: PromptCache) -> None:
    @promptcache.cached
    def add(a: int, b: int = 1) -> int:
        return a + b

    @default_cache.cached(ttl=60)
    async def greet(name: str) -> str:
        return f"hi {name}"

    assert_type(add(1, b=2), int)
    assert add(1, b=2) == 3
    assert add.__wrapped__(1) == 2
    assert isinstance(add.cache_key(1, b=2), str)
    assert callable(greet.invalidate)

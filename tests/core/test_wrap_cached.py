"""``pc.cached`` / ``promptcache.cached``: the decorator form over the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import promptcache
from promptcache import _wrap
from promptcache._wrap import PromptCache
from tests.core.test_wrap_kit import RecordingAccountant, RecordingPlanner


def _pc(directory: Path, **kwargs: Any) -> PromptCache:
    return PromptCache(
        directory, planner=RecordingPlanner(), accountant=RecordingAccountant(), **kwargs
    )


def test_bare_and_configured_decorators(pc_dir: Path) -> None:
    pc = _pc(pc_dir)
    calls: list[str] = []

    @pc.cached
    def shout(text: str) -> str:
        calls.append(text)
        return text.upper()

    @pc.cached(ttl=3600, namespace="other")
    def whisper(text: str) -> str:
        calls.append(text)
        return text.lower()

    assert shout("a") == shout("a") == "A"
    assert whisper("B") == whisper("B") == "b"
    assert calls == ["a", "B"]
    assert shout.__wrapped__("c") == "C"


async def test_async_functions(pc_dir: Path) -> None:
    pc = _pc(pc_dir)
    calls = 0

    @pc.cached
    async def answer(question: str) -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"len": len(question)}

    assert await answer("why") == await answer("why") == {"len": 3}
    assert calls == 1


def test_results_survive_a_new_instance_and_response_cache_off(pc_dir: Path) -> None:
    runs = 0

    def square(x: int) -> int:
        nonlocal runs
        runs += 1
        return x * x

    first = _pc(pc_dir, response_cache=False).cached(square)
    second = _pc(pc_dir).cached(square)
    assert first(4) == 16
    assert second(4) == 16  # same function, same directory: the stored result
    assert runs == 1


def test_module_level_cached_uses_default(pc_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wrap, "_default", _pc(pc_dir))
    count = 0

    @promptcache.cached(ttl=10)
    def twice(x: int) -> int:
        nonlocal count
        count += 1
        return 2 * x

    assert twice(2) == twice(2) == 4
    assert count == 1


def test_misuse(pc_dir: Path) -> None:
    pc = _pc(pc_dir)
    with pytest.raises(TypeError):
        pc.cached(42)  # type: ignore[call-overload]
    with pytest.raises(promptcache.ConfigError):
        pc.cached(ttl=-5)

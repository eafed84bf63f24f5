"""Shared helpers for the keying tests (items 1, 2 and 4): real SDK clients on the emulator.

Holds no tests. ``call`` runs one generating call the way the test names it: ``"fast"`` is the
plain ``create`` (the pre-SDK fast path), ``"raw"`` is ``with_raw_response.create`` (the SDK
builds the request and the transport keys its bytes).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator

KINDS = ["OpenAI", "AsyncOpenAI", "Anthropic", "AsyncAnthropic"]
PATHS = ["fast", "raw"]
OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-sonnet-5-5"


def is_anthropic(kind: str) -> bool:
    return "Anthropic" in kind


def make_client(kind: str, emu: Emulator, **kwargs: Any) -> Any:
    """A real SDK client of class ``kind`` talking to the emulator."""
    options: dict[str, Any] = {"api_key": "sk-test-key", "max_retries": 0, **kwargs}
    if kind == "OpenAI":
        return openai.OpenAI(base_url=emu.openai_base_url, **options)
    if kind == "AsyncOpenAI":
        return openai.AsyncOpenAI(base_url=emu.openai_base_url, **options)
    if kind == "Anthropic":
        return anthropic.Anthropic(base_url=emu.anthropic_base_url, **options)
    if kind == "AsyncAnthropic":
        return anthropic.AsyncAnthropic(base_url=emu.anthropic_base_url, **options)
    raise AssertionError(kind)


def request(kind: str, text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    """Keyword arguments of the kind's main ``create``."""
    if is_anthropic(kind):
        return {
            "model": ANTHROPIC_MODEL,
            "max_tokens": 32,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    return {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": text}], **extra}


async def call(client: Any, kind: str, path: str = "fast", **kwargs: Any) -> Any:
    """One generating call; returns the parsed SDK object (``raw`` parses the raw response)."""
    resource = client.messages if is_anthropic(kind) else client.chat.completions
    if path == "raw":
        resource = resource.with_raw_response
    result = resource.create(**kwargs)
    if inspect.isawaitable(result):
        result = await result
    if path == "raw":
        result = result.parse()
        if inspect.isawaitable(result):
            result = await result
    return result


def served(emu: Emulator) -> int:
    """Generating calls the emulator answered with a 2xx (injected faults not counted)."""
    return sum(1 for c in emu.calls if 200 <= c.status < 300)


async def close(*clients: Any) -> None:
    for client in clients:
        closing = client.close()
        if inspect.isawaitable(closing):
            await closing


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    with Emulator() as e:
        yield e


@pytest.fixture()
def checked_pc(pc_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PromptCache]:
    """A PromptCache whose transport re-keys every fast-path call and fails on a mismatch."""
    monkeypatch.setenv("PROMPTCACHE_CHECK_KEYS", "1")
    cache = PromptCache(pc_dir)
    yield cache
    cache.close()


def files_containing(directory: Path, needle: bytes) -> list[Path]:
    """Every file under ``directory`` whose bytes contain ``needle``."""
    return [p for p in directory.rglob("*") if p.is_file() and needle in p.read_bytes()]

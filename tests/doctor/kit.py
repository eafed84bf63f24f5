"""Shared pieces of the doctor tests: a PromptCache on the emulator's clock, SDK clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai

import promptcache
from promptcache import DoctorOptions, Finding
from promptcache.testing import Emulator

SYSTEM = "You are a careful support assistant for ACME. Follow the refund policy. " * 120
SHORT = "You are a careful support assistant for ACME. " * 40  # ~450 tokens: below 1,024


def pc_for(
    emu: Emulator, directory: Path, mode: str = "safe", **kw: Any
) -> promptcache.PromptCache:
    kw.setdefault("openai", promptcache.OpenAIOptions(endpoint="openai"))
    kw.setdefault("doctor", DoctorOptions())
    return promptcache.PromptCache(
        directory=directory,
        response_cache=False,
        restructure=mode,  # type: ignore[arg-type]
        clock=emu.clock.now,
        **kw,
    )


@contextmanager
def claude(emu: Emulator, pc: promptcache.PromptCache) -> Iterator[anthropic.Anthropic]:
    raw = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="x", max_retries=0)
    try:
        yield pc.wrap(raw)
    finally:
        raw.close()


@contextmanager
def gpt(emu: Emulator, pc: promptcache.PromptCache) -> Iterator[openai.OpenAI]:
    raw = openai.OpenAI(base_url=emu.openai_base_url, api_key="x", max_retries=0)
    try:
        yield pc.wrap(raw)
    finally:
        raw.close()


def kinds(findings: list[Finding]) -> list[str]:
    return sorted({f.kind for f in findings})


def one(findings: list[Finding], kind: str) -> Finding:
    hits = [f for f in findings if f.kind == kind]
    assert len(hits) == 1, (kind, findings)
    return hits[0]

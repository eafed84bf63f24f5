"""SDK clients pointed at the emulator, closed after each test (no leaked sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest

from promptcache.testing import Emulator


@pytest.fixture()
def oai(emulator: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.openai_base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture()
def ant(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="x", max_retries=0) as c:
        yield c


@pytest.fixture()
async def aoai(emulator: Emulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=emulator.openai_base_url, api_key="x", max_retries=0
    ) as c:
        yield c


@pytest.fixture()
async def aant(emulator: Emulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=emulator.anthropic_base_url, api_key="x", max_retries=0
    ) as c:
        yield c

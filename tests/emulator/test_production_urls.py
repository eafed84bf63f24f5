"""The emulator behind production and gateway base URLs (``Emulator.transport``)."""

from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest

from promptcache.testing import Emulator

MSG = [{"role": "user", "content": "hello"}]


def test_default_base_urls_reach_the_emulator(emulator: Emulator) -> None:
    oa = openai.OpenAI(
        api_key="k", http_client=openai.DefaultHttpxClient(transport=emulator.transport())
    )
    assert str(oa.base_url) == "https://api.openai.com/v1/"
    with oa:
        oa.chat.completions.create(model="gpt-5.5", messages=MSG)  # type: ignore[arg-type]
    call = emulator.last_call
    assert (call.api, call.host, call.status) == ("openai.chat", "api.openai.com", 200)

    an = anthropic.Anthropic(
        api_key="k", http_client=anthropic.DefaultHttpxClient(transport=emulator.transport())
    )
    with an:
        an.messages.create(model="claude-opus-5", max_tokens=5, messages=MSG)  # type: ignore[arg-type]
    call = emulator.last_call
    assert (call.api, call.host, call.status) == ("anthropic.messages", "api.anthropic.com", 200)


def test_gateway_prefixes_route_by_suffix(emulator: Emulator) -> None:
    gw = openai.OpenAI(
        api_key="k",
        base_url="https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
        http_client=openai.DefaultHttpxClient(transport=emulator.transport()),
    )
    with gw:
        gw.responses.create(model="gpt-6.1-sol", input="hi")
    call = emulator.last_call
    assert (call.api, call.host, call.path) == (
        "openai.responses",
        "gateway.ai.cloudflare.com",
        "/v1/acct/gw/openai/responses",
    )


def test_async_transport(emulator: Emulator) -> None:
    async def go() -> None:
        client = openai.AsyncOpenAI(
            api_key="k",
            http_client=openai.DefaultAsyncHttpxClient(transport=emulator.async_transport()),
        )
        await client.chat.completions.create(model="gpt-4.1", messages=MSG)  # type: ignore[arg-type]
        await client.close()

    asyncio.run(go())
    assert emulator.last_call.host == "api.openai.com"


def test_unknown_paths_still_404(emulator: Emulator) -> None:
    gw = openai.OpenAI(
        api_key="k",
        base_url="https://proxy.internal/v1",
        http_client=openai.DefaultHttpxClient(transport=emulator.transport()),
    )
    with gw, pytest.raises(openai.NotFoundError):
        gw.embeddings.create(model="text-embedding-3-small", input="x")

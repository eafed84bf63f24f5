"""The pre-SDK fast path: same keys as the transport, same objects as the SDK, steps aside."""

from __future__ import annotations

import inspect
from typing import Any

import httpx2
import openai
import pydantic
import pytest

from promptcache._fastpath import fast_class
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator
from tests.core.test_wrap_kit import (
    ALL_KINDS,
    OPENAI_MODEL,
    RecordingAccountant,
    RecordingPlanner,
    accountant,
    create_kwargs,
    create_method,
    emu,
    is_anthropic,
    make_client,
    pc,
    planner,
    same,
    served,
)

__all__ = ["accountant", "emu", "pc", "planner"]


async def _call(fn: Any, **kwargs: Any) -> Any:
    result = fn(**kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_fast_hit_equals_transport_hit_and_live(
    kind: str, emu: Emulator, pc: PromptCache
) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "three ways")
    resource = client.messages if is_anthropic(kind) else client.chat.completions
    live = await _call(create_method(client, kind), **kwargs)
    fast = await _call(create_method(client, kind), **kwargs)
    # with_raw_response steps aside: the transport serves the same entry.
    raw = await _call(resource.with_raw_response.create, **kwargs)
    slow = await _call(raw.parse)
    assert served(emu) == 1
    assert pc.engine.fast_hits == 1 and pc.engine.hits == 2
    same(live, fast)
    same(live, slow)
    assert fast.model_fields_set == live.model_fields_set


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_fast_stream_hit_is_a_real_stream(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "fast stream", stream=True)

    async def events() -> list[Any]:
        stream = await _call(create_method(client, kind), **kwargs)
        if hasattr(stream, "__aiter__"):
            return [e.model_dump() async for e in stream]
        return [e.model_dump() for e in stream]

    assert await events() == await events()
    assert pc.engine.fast_hits == 1


@pytest.mark.parametrize(
    "variant",
    [
        {"messages": ({"role": "user", "content": "tuple"},)},  # tuples serialise as lists
        {"temperature": 0.25, "top_p": None, "metadata": {"b": "2", "a": "1"}},
        {"messages": [{"content": "ünïcødé ☃", "role": "user"}]},  # key order, unicode
        {"stop": ["\n\n", "END"], "seed": 7},
    ],
    ids=["tuple", "params", "unicode", "stop"],
)
def test_fast_path_key_equals_transport_key(
    variant: dict[str, Any], emu: Emulator, pc: PromptCache
) -> None:
    # PROMPTCACHE_CHECK_KEYS=1 (set by the pc fixture): the transport re-keys the bytes the SDK
    # sent and raises on any difference from the fast path's key.
    client = pc.wrap(make_client("OpenAI", emu))
    kwargs = {**create_kwargs("OpenAI", "key check"), **variant}
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert served(emu) == 1 and pc.engine.fast_hits == 1
    same(first, second)


def test_fast_path_and_transport_share_entries_both_ways(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", emu))
    kwargs = create_kwargs("OpenAI", "shared")
    # Stored by the transport-only path (raw response), then served by the fast path…
    client.chat.completions.with_raw_response.create(**kwargs)
    client.chat.completions.create(**kwargs)
    # …and stored by the fast path's miss, then served to a raw call.
    other = create_kwargs("OpenAI", "shared 2")
    client.chat.completions.create(**other)
    raw = client.chat.completions.with_raw_response.create(**other)
    assert raw.headers["x-promptcache"] == "hit"
    assert served(emu) == 2


class Shape(pydantic.BaseModel):
    role: str
    content: str


def test_steps_aside_for_what_it_cannot_key(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", emu))
    # A generator of messages: the SDK materialises it; the transport still caches.
    for _ in range(2):
        client.chat.completions.create(
            model=OPENAI_MODEL, messages=(m for m in [{"role": "user", "content": "gen"}])
        )
    # extra_body / extra_query change what is sent: left to the SDK and the transport.
    for _ in range(2):
        client.chat.completions.create(**create_kwargs("OpenAI", "extra"), extra_body={"n": 1})
    assert served(emu) == 2
    assert pc.engine.fast_hits == 0 and pc.engine.hits == 2


def test_extra_headers_are_part_of_the_template(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("Anthropic", emu))
    kwargs = create_kwargs("Anthropic", "betas")
    client.messages.create(**kwargs)
    client.messages.create(**kwargs, extra_headers={"anthropic-beta": "b-1"})
    client.messages.create(**kwargs, extra_headers={"anthropic-beta": "b-1"})
    client.messages.create(**kwargs)
    assert served(emu) == 2
    assert pc.engine.fast_hits == 2


def test_api_key_change_is_a_new_tenant(emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", emu))
    kwargs = create_kwargs("OpenAI", "rotate")
    client.chat.completions.create(**kwargs)
    client.api_key = "rotated-key"
    client.chat.completions.create(**kwargs)
    assert served(emu) == 2


def test_callable_api_key_is_fine(emu: Emulator, pc: PromptCache) -> None:
    bare = openai.OpenAI(base_url=emu.openai_base_url, api_key=lambda: "from-provider")
    client = pc.wrap(bare)
    kwargs = create_kwargs("OpenAI", "provider key")
    a = client.chat.completions.create(**kwargs)
    b = client.chat.completions.create(**kwargs)
    same(a, b)
    assert served(emu) == 1
    bare.close()


def test_fast_class_shapes() -> None:
    fast = fast_class(openai.OpenAI)
    assert fast is not None and issubclass(fast, openai.OpenAI)
    assert fast.__name__ == "OpenAI"
    assert fast_class(fast) is fast
    assert fast_class(openai.AsyncOpenAI) is not fast
    assert fast_class(httpx2.Client) is None


def test_not_our_http_client_means_no_fast_path(emu: Emulator, pc_dir: Any) -> None:
    pc = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    wrapped = pc.wrap(make_client("OpenAI", emu))
    escaped = wrapped.with_options(http_client=httpx2.Client())
    kwargs = create_kwargs("OpenAI", "escaped")
    wrapped.chat.completions.create(**kwargs)
    escaped.chat.completions.create(**kwargs)  # the user's own http client: not ours, no cache
    assert served(emu) == 2
    escaped.close()
    pc.close()

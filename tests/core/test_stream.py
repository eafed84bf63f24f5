"""Streams: passed through live while recorded; stored only when complete; replayed in order.

A hit replays the recorded SSE bytes, so the SDK builds a real ``Stream``/``AsyncStream`` with
the same events in the same order as the live one (never one aggregated chunk).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from promptcache._wrap import PromptCache
from promptcache.testing import Emulator, LatencyModel
from tests.core.test_wrap_kit import (
    ALL_KINDS,
    OPENAI_MODEL,
    RecordingAccountant,
    RecordingPlanner,
    accountant,
    close_clients,
    create_kwargs,
    create_method,
    emu,
    is_anthropic,
    make_client,
    pc,
    planner,
    served,
)

__all__ = ["accountant", "emu", "pc", "planner"]


async def _events(stream: Any) -> list[Any]:
    if hasattr(stream, "__aiter__"):
        return [event async for event in stream]
    return list(stream)


def _dumps(events: list[Any]) -> list[tuple[type[Any], dict[str, Any]]]:
    return [(type(e), e.model_dump(warnings=False)) for e in events]


async def _call(fn: Any, **kwargs: Any) -> Any:
    result = fn(**kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_full_stream_is_replayed_event_by_event(
    kind: str, emu: Emulator, pc: PromptCache, accountant: RecordingAccountant
) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "stream me", stream=True)
    live = await _events(await _call(create_method(client, kind), **kwargs))
    replay_stream = await _call(create_method(client, kind), **kwargs)
    sdk: Any = anthropic if is_anthropic(kind) else openai
    expected = sdk.AsyncStream if kind.startswith("Async") else sdk.Stream
    assert isinstance(replay_stream, expected)
    replay = await _events(replay_stream)
    assert served(emu) == 1
    assert len(live) > 3
    assert _dumps(live) == _dumps(replay)
    assert [c for _, _, c, _ in accountant.upstream] == [True]
    assert len(accountant.hits) == 1


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
async def test_responses_stream_replay(kind: str, emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = {"model": OPENAI_MODEL, "input": "stream a response", "stream": True}
    live = await _events(await _call(client.responses.create, **kwargs))
    replay = await _events(await _call(client.responses.create, **kwargs))
    assert served(emu) == 1
    assert _dumps(live) == _dumps(replay)
    assert live[-1].type == "response.completed"


@pytest.fixture()
async def slow_emu() -> AsyncIterator[Emulator]:
    # Spaced output events, so that a reader who stops early has not received the end.
    with Emulator(latency=LatencyModel(base_s=0.0, per_output_token_s=0.003)) as e:
        yield e
        await close_clients()


@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_partial_stream_is_not_stored(
    kind: str, slow_emu: Emulator, pc: PromptCache, accountant: RecordingAccountant
) -> None:
    client = pc.wrap(make_client(kind, slow_emu))
    kwargs = create_kwargs(kind, "read me halfway", stream=True)
    stream = await _call(create_method(client, kind), **kwargs)
    seen = 0
    if hasattr(stream, "__aiter__"):
        async for _ in stream:
            seen += 1
            if seen == 2:
                break
        await stream.close()
    else:
        for _ in stream:
            seen += 1
            if seen == 2:
                break
        stream.close()
    assert accountant.upstream[-1][2] is False  # recorded as incomplete
    full = await _events(await _call(create_method(client, kind), **kwargs))
    again = await _events(await _call(create_method(client, kind), **kwargs))
    assert served(slow_emu) == 2  # the partial read was not stored; the full one was
    assert _dumps(full) == _dumps(again)


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI", "Anthropic", "AsyncAnthropic"])
async def test_cut_stream_raises_and_is_not_stored(
    kind: str, emu: Emulator, pc: PromptCache, accountant: RecordingAccountant
) -> None:
    client = pc.wrap(make_client(kind, emu))
    kwargs = create_kwargs(kind, "cut me", stream=True)
    emu.inject("stream_cut", after_events=3)
    errors = (openai.APIError, anthropic.APIError, Exception)
    with pytest.raises(errors):
        await _events(await _call(create_method(client, kind), **kwargs))
    assert accountant.upstream[-1][2] is False
    await _events(await _call(create_method(client, kind), **kwargs))
    assert served(emu) == 2


async def test_stream_managers_replay(emu: Emulator, pc: PromptCache) -> None:
    oa = pc.wrap(make_client("OpenAI", emu))
    an = pc.wrap(make_client("AsyncAnthropic", emu))
    chat = create_kwargs("OpenAI", "manager")
    finals = []
    for _ in range(2):
        with oa.chat.completions.stream(**chat) as s:
            events = [e.type for e in s]
            finals.append((events, s.get_final_completion()))
    assert finals[0][0] == finals[1][0]
    assert finals[0][1].model_dump(warnings=False) == finals[1][1].model_dump(warnings=False)
    responses = []
    for _ in range(2):
        with oa.responses.stream(model=OPENAI_MODEL, input="manager") as rs:
            responses.append(([e.type for e in rs], rs.get_final_response()))
    assert responses[0][0] == responses[1][0]
    assert responses[0][1].model_dump() == responses[1][1].model_dump()
    messages = []
    for _ in range(2):
        async with an.messages.stream(**create_kwargs("AsyncAnthropic", "manager")) as ms:
            texts = [t async for t in ms.text_stream]
            messages.append((texts, await ms.get_final_message()))
    assert messages[0][0] == messages[1][0] and len(messages[0][0]) > 1
    assert messages[0][1] == messages[1][1]
    async with an.beta.messages.stream(**create_kwargs("AsyncAnthropic", "beta manager")) as bs:
        beta_live = await bs.get_final_message()
    async with an.beta.messages.stream(**create_kwargs("AsyncAnthropic", "beta manager")) as bs:
        beta_hit = await bs.get_final_message()
    assert beta_live == beta_hit
    assert served(emu) == 4


def test_stream_and_non_stream_are_different_entries(emu: Emulator, pc_dir: Path) -> None:
    pc = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    client = pc.wrap(make_client("OpenAI", emu))
    kwargs = create_kwargs("OpenAI", "both ways")
    client.chat.completions.create(**kwargs)
    list(client.chat.completions.create(**kwargs, stream=True))
    list(client.chat.completions.create(**kwargs, stream=True))
    client.chat.completions.create(**kwargs)
    assert served(emu) == 2
    pc.close()


class _Sse(httpx2.SyncByteStream):
    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        yield from self.frames


def _chunk(text: str) -> bytes:
    data = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


@pytest.mark.parametrize("finished", [True, False])
def test_end_marker_inside_model_text_does_not_count(finished: bool, pc_dir: Path) -> None:
    frames = [_chunk("an SSE stream ends with\ndata: [DONE]"), _chunk(" like that")]
    if finished:
        frames.append(b"data: [DONE]\n\n")
    served_count = 0

    def reply(request: httpx2.Request) -> httpx2.Response:
        nonlocal served_count
        served_count += 1
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Sse(list(frames))
        )

    pc = PromptCache(pc_dir, planner=RecordingPlanner(), accountant=RecordingAccountant())
    http = httpx2.Client(transport=httpx2.MockTransport(reply))
    client = pc.wrap(openai.OpenAI(base_url="http://up.test/v1", api_key="k", http_client=http))
    for _ in range(2):
        chunks = list(client.chat.completions.create(**create_kwargs("OpenAI"), stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks).endswith("like that")
    assert served_count == (1 if finished else 2)
    pc.close()

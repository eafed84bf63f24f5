"""Single-flight: concurrent identical requests make one upstream call (threads and tasks)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

import promptcache
from promptcache._singleflight import SingleFlight
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator, LatencyModel
from tests.core.test_wrap_kit import (
    accountant,
    close_clients,
    create_kwargs,
    make_client,
    pc,
    planner,
    same,
    served,
)

__all__ = ["accountant", "pc", "planner"]

N = 8


@pytest.fixture()
async def slow_emu() -> AsyncIterator[Emulator]:
    # Each answer takes 0.3 s, so that every request starts while the first is in flight.
    with Emulator(latency=LatencyModel(base_s=0.3, per_output_token_s=0.0)) as e:
        yield e
        await close_clients()


def _in_threads(fn: Any, n: int = N) -> list[Any]:
    barrier = threading.Barrier(n)

    def run() -> Any:
        barrier.wait()
        try:
            return fn()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: run(), range(n)))


def test_threads_make_one_call(slow_emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", slow_emu))
    results = _in_threads(lambda: client.chat.completions.create(**create_kwargs("OpenAI")))
    assert served(slow_emu) == 1
    for r in results[1:]:
        same(results[0], r)


async def test_tasks_make_one_call(slow_emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("AsyncAnthropic", slow_emu))
    kwargs = create_kwargs("AsyncAnthropic")
    results = await asyncio.gather(*(client.messages.create(**kwargs) for _ in range(N)))
    assert served(slow_emu) == 1
    assert all(r == results[0] for r in results)


def test_threads_streaming_make_one_call(slow_emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("Anthropic", slow_emu))
    kwargs = create_kwargs("Anthropic", "stream together", stream=True)
    results = _in_threads(lambda: [e.type for e in client.messages.create(**kwargs)], n=4)
    assert served(slow_emu) == 1
    assert all(r == results[0] for r in results) and len(results[0]) > 3


def test_failed_leader_lets_a_follower_lead(slow_emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", slow_emu))
    slow_emu.inject("server_error", times=1)
    results = _in_threads(lambda: client.chat.completions.create(**create_kwargs("OpenAI")), 4)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], openai.InternalServerError)
    assert served(slow_emu) == 2


async def test_unread_stream_in_same_task_does_not_deadlock(
    slow_emu: Emulator, pc: PromptCache
) -> None:
    client = pc.wrap(make_client("AsyncOpenAI", slow_emu))
    kwargs = create_kwargs("AsyncOpenAI", "twice in one task", stream=True)
    first = await client.chat.completions.create(**kwargs)  # leads, not read yet
    second = await asyncio.wait_for(client.chat.completions.create(**kwargs), timeout=5)
    a = [e async for e in first]
    b = [e async for e in second]
    assert [e.model_dump() for e in a][1:] != []
    assert len(a) == len(b)
    assert served(slow_emu) == 2


def test_unread_stream_in_same_thread_does_not_deadlock(
    slow_emu: Emulator, pc: PromptCache
) -> None:
    client = pc.wrap(make_client("OpenAI", slow_emu))
    kwargs = create_kwargs("OpenAI", "twice in one thread", stream=True)
    first = client.chat.completions.create(**kwargs)
    second = client.chat.completions.create(**kwargs)
    assert len(list(first)) == len(list(second))
    assert served(slow_emu) == 2


def test_registry_hands_result_to_followers() -> None:
    flights: SingleFlight[str] = SingleFlight()
    flight, leader = flights.join("k", owner=1)
    again, follower_leads = flights.join("k", owner=2)
    assert leader and not follower_leads and again is flight
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(again.wait(5)))
    waiter.start()
    flights.finish(flight, "entry")
    waiter.join(5)
    assert got == ["entry"]
    assert len(flights) == 0
    _, leads_again = flights.join("k")
    assert leads_again


async def test_registry_wakes_async_followers_from_another_thread() -> None:
    flights: SingleFlight[str] = SingleFlight()
    flight, _ = flights.join("k")
    waiting = asyncio.ensure_future(flights.wait_async(flight, 5))
    await asyncio.sleep(0)
    threading.Thread(target=lambda: flights.finish(flight, "done")).start()
    assert await waiting == "done"
    # A follower that joins after the end gets the result at once; a timeout yields None.
    assert await flights.wait_async(flight, 1) == "done"
    other, _ = flights.join("other")
    assert await flights.wait_async(other, 0.01) is None


def test_lost_stream_leader_is_abandoned(slow_emu: Emulator, pc: PromptCache) -> None:
    client = pc.wrap(make_client("OpenAI", slow_emu))
    kwargs = create_kwargs("OpenAI", "lost leader", stream=True)
    lost = client.chat.completions.create(**kwargs)  # leads a flight, never read

    def read_all() -> list[Any]:
        return [e.model_dump() for e in client.chat.completions.create(**kwargs)]

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(read_all).result(10)  # waits for the stall, then goes itself
    with promptcache.refresh(), ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        second = pool.submit(contextvars.copy_context().run, read_all).result(10)
        # No queueing behind the dead flight again: straight upstream (0.3 s latency).
        assert time.monotonic() - started < 0.9
    assert len(first) == len(second)
    assert served(slow_emu) == 3
    assert len(pc.engine.flights) == 0  # the dead flight was dropped, not kept forever
    lost.close()

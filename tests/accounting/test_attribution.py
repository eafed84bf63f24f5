"""Tags and tracked app functions, across threads, tasks and generators."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import promptcache
from promptcache import current_attribution, tag, track
from promptcache._accounting._attribution import Attribution, bind


def now() -> Attribution:
    return current_attribution()


@track
def plain(x: int, *, y: int = 2) -> tuple[int, Attribution]:
    """Doc kept."""
    return x + y, now()


@track(name="custom")
async def coro() -> Attribution:
    await asyncio.sleep(0)
    return now()


@track
def gen(n: int) -> Iterator[Attribution]:
    for _ in range(n):
        yield now()


@track(name="agen")
async def agen(n: int) -> AsyncIterator[Attribution]:
    for _ in range(n):
        await asyncio.sleep(0)
        yield now()


def test_track_plain_keeps_signature_and_names_the_function() -> None:
    assert inspect.signature(plain) == inspect.signature(plain.__wrapped__)  # type: ignore[attr-defined]
    assert list(inspect.signature(plain).parameters) == ["x", "y"]
    assert plain.__doc__ == "Doc kept." and plain.__name__ == "plain"
    assert hasattr(plain, "__wrapped__")
    value, attr = plain(1)
    assert value == 3
    assert attr.function == f"{__name__}.plain"
    assert now().function is None  # restored afterwards


async def test_track_coroutine_and_async_generator() -> None:
    assert inspect.iscoroutinefunction(coro)
    assert (await coro()).function == "custom"
    assert inspect.isasyncgenfunction(agen)
    seen = [a.function async for a in agen(3)]
    assert seen == ["agen"] * 3
    assert now().function is None


def test_track_generator_sets_function_only_while_the_body_runs() -> None:
    g = gen(2)
    assert inspect.isgenerator(gen(0))
    first = next(g)
    assert first.function == f"{__name__}.gen"
    assert now().function is None  # between yields: the caller's attribution
    assert [a.function for a in g] == [f"{__name__}.gen"]


def test_track_generator_forwards_send_throw_and_return() -> None:
    @track(name="echo")
    def echo() -> Generator[tuple[object, str | None], object, None]:
        got: object = None
        while True:
            try:
                got = yield (got, now().function)
            except KeyError:
                got = "caught"

    g: Any = echo()
    assert next(g) == (None, "echo")
    assert g.send(5) == (5, "echo")
    assert g.throw(KeyError()) == ("caught", "echo")
    g.close()

    @track
    def returns() -> Generator[int, None, int]:
        yield 1
        return 7

    def outer() -> Generator[int, None, None]:
        r = yield from returns()
        yield r

    assert list(outer()) == [1, 7]


def test_nested_track_innermost_wins_and_tags_combine() -> None:
    @track(name="outer")
    def outer() -> tuple[Attribution, Attribution]:
        with tag("t1"):
            return inner(), now()

    @track(name="inner")
    def inner() -> Attribution:
        return now()

    with tag("t0"):
        i, o = outer()
    assert i == Attribution(("t0", "t1"), "inner")
    assert o == Attribution(("t0", "t1"), "outer")


def test_track_misuse_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="name="):
        track("oops")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        track(42)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        track(name="")


def test_tags_nest_dedupe_and_validate() -> None:
    with tag("a", "b"), tag("b", "c"):
        assert now().tags == ("a", "b", "c")
    assert now().tags == ()
    with pytest.raises(TypeError), tag(""):
        pass


async def test_tags_follow_asyncio_tasks_without_leaking() -> None:
    async def work(name: str) -> tuple[str, ...]:
        with tag(name):
            await asyncio.sleep(0)
            return now().tags

    with tag("req"):
        results = await asyncio.gather(work("x"), work("y"))
        assert now().tags == ("req",)
        assert (await asyncio.to_thread(now)).tags == ("req",)
    assert list(results) == [("req", "x"), ("req", "y")]


def test_threads_need_bind_and_bind_works() -> None:
    with tag("batch"), ThreadPoolExecutor(2) as pool:
        # Python's rule: a pool worker starts with an empty context...
        assert pool.submit(now).result() == Attribution()
        # ...so bind where you submit.
        assert pool.submit(bind(now)).result().tags == ("batch",)
        assert pool.submit(current_attribution().bind(now)).result().tags == ("batch",)
        box: list[Attribution] = []

        def put() -> None:
            box.append(now())

        t = threading.Thread(target=bind(put))
        t.start()
        t.join()
    assert box == [Attribution(("batch",), None)]


def test_apply_in_a_worker_thread() -> None:
    attr = Attribution(("w",), "app.worker")
    box: list[Attribution] = []

    def worker() -> None:
        with attr.apply():
            box.append(now())
        box.append(now())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert box == [attr, Attribution()]


def test_public_names() -> None:
    assert promptcache.track is track and promptcache.tag is tag

"""QA: a tag opened inside a tracked generator must not leak to the caller between yields."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai

import promptcache
from promptcache.testing import Emulator


@promptcache.track
def pages() -> Iterator[tuple[str, ...]]:
    with promptcache.tag("inside"):
        yield promptcache.current_attribution().tags
        yield promptcache.current_attribution().tags
    yield promptcache.current_attribution().tags


@promptcache.track
async def apages() -> AsyncIterator[tuple[str, ...]]:
    with promptcache.tag("inside"):
        yield promptcache.current_attribution().tags
        yield promptcache.current_attribution().tags
    yield promptcache.current_attribution().tags


def test_generator_tags_stay_inside_the_generator() -> None:
    with promptcache.tag("outer"):
        g = pages()
        assert next(g) == ("outer", "inside")
        assert promptcache.current_attribution().tags == ("outer",)  # leaked before the fix
        assert next(g) == ("outer", "inside")
        assert promptcache.current_attribution().tags == ("outer",)
        assert next(g) == ("outer",)
    assert promptcache.current_attribution().tags == ()


async def test_async_generator_tags_stay_inside_the_generator() -> None:
    seen: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    async for inner in apages():
        seen.append((inner, promptcache.current_attribution().tags))
    assert seen == [(("inside",), ()), (("inside",), ()), ((), ())]


def test_calls_after_a_yield_are_billed_to_the_caller(emulator: Emulator, pc_dir: object) -> None:
    pc = promptcache.PromptCache(directory=str(pc_dir), response_cache=False)
    raw = openai.OpenAI(base_url=emulator.openai_base_url, api_key="x", max_retries=0)
    client = pc.wrap(raw)
    try:
        g = pages()
        next(g)
        client.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "x"}])
        groups = pc.ledger.group_by("tag")
    finally:
        pc.close()
        raw.close()
    assert set(groups) == {"(none)"}

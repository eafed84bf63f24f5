"""QA regression: a fast-path miss that loses the race to a leader must not go upstream again.

The fast path looks an entry up before the SDK builds the request; if another caller's flight
finishes (and stores the answer) between that lookup and this call joining single-flight, this
call becomes the leader of a new flight. It must then look again instead of calling upstream.
"""

from __future__ import annotations

import threading
from pathlib import Path

import openai
from openai.types.chat import ChatCompletionMessageParam

from promptcache._store import MemoryStore
from promptcache._wrap import PromptCache
from promptcache.testing import Emulator


class _SlowFirstGet(MemoryStore):
    """A memory store whose first ``get`` on one thread misses, then waits to be released."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_thread: int | None = None
        self.inside = threading.Event()
        self.release = threading.Event()

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        if threading.get_ident() == self.slow_thread:
            self.slow_thread = None
            self.inside.set()
            assert self.release.wait(10)
        return value


def test_fast_path_miss_then_finished_flight_is_a_hit(tmp_path: Path) -> None:
    store = _SlowFirstGet()
    msgs: list[ChatCompletionMessageParam] = [{"role": "user", "content": "race"}]
    with Emulator() as emu, PromptCache(directory=tmp_path, store=store) as pc:
        base = openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0)
        client = pc.wrap(base)
        results: list[object] = []

        def slow() -> None:
            store.slow_thread = threading.get_ident()
            results.append(client.chat.completions.create(model="gpt-4o", messages=msgs))

        t = threading.Thread(target=slow)
        t.start()
        assert store.inside.wait(10)  # the slow call missed and is paused after its lookup
        first = client.chat.completions.create(model="gpt-4o", messages=msgs)
        store.release.set()
        t.join(10)
        base.close()
        assert len(emu.calls) == 1
        assert results == [first]

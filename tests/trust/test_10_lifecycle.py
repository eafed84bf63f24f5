"""Item 10: lifecycle and settings.

``close()`` releases every descriptor and thread promptcache made: the store's SQLite
connections in every thread that used it (the caller's, ``asyncio.to_thread`` workers', the
write-behind thread's) and the write-behind thread itself — checked while the event loop and
its worker threads are still alive, as in a long-running server. And ``ttl``: NaN is refused,
``inf`` means no expiry in every store (disk, memory, Redis).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest

import promptcache
from promptcache._store import MemoryStore
from promptcache.testing import Emulator
from tests.core.test_store_redis import redis_url
from tests.trust.store_kit import OPENAI_MODEL, ask, is_ledger, openai_client, run_python

__all__ = ["redis_url"]


def _fds() -> dict[int, str]:
    """This process's open descriptors and what they point at."""
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:  # the listing's own descriptor, gone already
            continue
    return out


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def _ours(directory: Path, fds: dict[int, str]) -> list[str]:
    """Descriptors pointing into the promptcache directory, relative names."""
    prefix = str(directory) + os.sep
    return sorted(t.removeprefix(prefix) for t in fds.values() if t.startswith(prefix))


def _settle(check: Any, timeout: float = 2.0) -> None:
    """Wait until ``check()`` is true (threads end a moment after being told to)."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


async def _use_and_close(directory: Path, emulator: Emulator) -> dict[str, Any]:
    """Sync, async and memo use, then close everything; what is left while the loop lives."""
    loop_fds, loop_threads = _fds(), _threads()
    pc = promptcache.PromptCache(directory)
    with openai_client(emulator) as sync_bare:
        client = pc.wrap(sync_bare)
        for text in ("a", "b", "a"):
            ask(client, text)

        @pc.cached
        def double(x: int) -> int:
            return 2 * x

        @pc.cached
        async def triple(x: int) -> int:
            return 3 * x

        assert [double(i) for i in (1, 2, 1)] == [2, 4, 2]
        async with openai.AsyncOpenAI(
            base_url=emulator.openai_base_url, api_key="test-key", max_retries=0
        ) as async_bare:
            aclient = pc.wrap(async_bare)
            for _ in range(3):  # concurrent lookups: several to_thread workers
                await asyncio.gather(
                    *[
                        aclient.chat.completions.create(
                            model=OPENAI_MODEL, messages=[{"role": "user", "content": t}]
                        )
                        for t in ("a", "c", "d", "e", "f", "g")
                    ]
                )
                assert await asyncio.gather(*[triple(i) for i in range(6)]) == [
                    3 * i for i in range(6)
                ]
        open_fds = _ours(directory, _fds())
        pc.close()
    _settle(lambda: not [t for t in _threads() - loop_threads if t.name.startswith("promptcache")])
    left_fds = {fd: t for fd, t in _fds().items() if fd not in loop_fds}
    new_threads = _threads() - loop_threads
    return {
        "open_before_close": open_fds,
        "left_in_directory": _ours(directory, left_fds),
        "left_files": sorted(t for t in left_fds.values() if t.startswith("/")),
        "left_threads": sorted(t.name for t in new_threads if t.name.startswith("promptcache")),
        "workers": sorted(t.name for t in new_threads),
    }


def test_close_releases_the_stores_descriptors_and_threads(
    emulator: Emulator, tmp_path: Path
) -> None:
    directory = tmp_path / "pc"
    got = asyncio.run(_use_and_close(directory, emulator))
    assert [n for n in got["open_before_close"] if n.startswith("responses")]  # it was used
    assert any(n.startswith("asyncio") for n in got["workers"])  # to_thread workers live on
    store_left = [n for n in got["left_in_directory"] if not is_ledger(n)]
    assert store_left == [], got
    assert "promptcache-writer" not in got["left_threads"], got


_WHOLE_CHILD = r"""
import asyncio, json, tempfile, time
from pathlib import Path
from promptcache.testing import Emulator
from tests.trust.test_10_lifecycle import _fds, _settle, _threads, _use_and_close

with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
    before_fds, before_threads = _fds(), _threads()
    got = asyncio.run(_use_and_close(Path(tmp) / "pc", emu))
    _settle(lambda: _threads() == before_threads)
    got["threads_after_loop"] = sorted(t.name for t in _threads() - before_threads)
    got["files_after_loop"] = sorted(
        t for fd, t in _fds().items() if fd not in before_fds and t.startswith("/")
    )
print(json.dumps(got))
"""


@pytest.mark.process
def test_close_releases_everything() -> None:
    # A fresh interpreter: no thread or descriptor of an earlier test in the baseline.
    got = run_python(_WHOLE_CHILD)
    assert got["left_in_directory"] == [], got
    assert got["left_files"] == [], got
    assert got["left_threads"] == [], got
    # And once the loop (and its worker threads) is gone: no thread, no file of ours.
    assert got["threads_after_loop"] == [], got
    assert got["files_after_loop"] == [], got


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    pc = promptcache.PromptCache(tmp_path / "pc")
    pc.store.stats()
    pc.close()
    pc.close()


# --- ttl -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [math.nan, -math.nan, 0, -1.0, -math.inf, True])
def test_bad_ttl_is_a_config_error(ttl: float, tmp_path: Path) -> None:
    with pytest.raises(promptcache.ConfigError, match="ttl"):
        promptcache.PromptCache(tmp_path / "pc", ttl=ttl)
    with (
        promptcache.PromptCache(tmp_path / "pc") as pc,
        pytest.raises(promptcache.ConfigError, match="ttl"),
    ):
        pc.cached(ttl=ttl)


def test_module_level_cached_refuses_nan(pc_dir: Path) -> None:
    with pytest.raises(promptcache.ConfigError, match="ttl"):
        promptcache.cached(ttl=math.nan)


def _inf_round_trip(pc: promptcache.PromptCache, emulator: Emulator) -> None:
    """A call and a memoized result with ``ttl=inf``: written, and served again."""
    with openai_client(emulator) as bare:
        client = pc.wrap(bare)
        ask(client, "forever")
        before = len(emulator.calls)
        ask(client, "forever")
        assert len(emulator.calls) == before  # a hit

        runs: list[int] = []

        @pc.cached(ttl=math.inf)
        def f(x: int) -> int:
            runs.append(x)
            return x

        assert f(1) == f(1) == 1
        assert runs == [1]
        pc.store.flush()


def test_inf_ttl_means_no_expiry_on_disk(emulator: Emulator, tmp_path: Path) -> None:
    import sqlite3

    with promptcache.PromptCache(tmp_path / "pc", ttl=math.inf) as pc:
        assert pc.ttl is None
        _inf_round_trip(pc, emulator)
        con = sqlite3.connect(tmp_path / "pc" / "responses" / "cache.db")
        try:
            expiries = {row[0] for row in con.execute("SELECT expire_time FROM Cache")}
        finally:
            con.close()
    assert expiries == {None}


def test_inf_ttl_means_no_expiry_in_memory(emulator: Emulator, tmp_path: Path) -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    with promptcache.PromptCache(tmp_path / "pc", store=store, ttl=math.inf) as pc:
        _inf_round_trip(pc, emulator)
        now[0] = 1e12  # thirty thousand years later
        with openai_client(emulator) as bare:
            before = len(emulator.calls)
            ask(pc.wrap(bare), "forever")
            assert len(emulator.calls) == before


def test_inf_ttl_means_no_expiry_in_redis(
    redis_url: str,
    emulator: Emulator,
    tmp_path: Path,
) -> None:
    import redis

    server = redis.Redis.from_url(redis_url)
    server.flushdb()
    with promptcache.PromptCache(tmp_path / "pc", store=redis_url, ttl=math.inf) as pc:
        _inf_round_trip(pc, emulator)
    try:
        keys = list(server.scan_iter(match="promptcache:*"))
        assert len(keys) == 2  # the response and the memoized result
        assert [server.ttl(k) for k in keys] == [-1, -1]  # stored, without an expiry
    finally:
        server.close()

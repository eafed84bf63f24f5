"""Item 8: fork-safe. Children forked after use, with calls in flight, finish and keep records.

gunicorn, uWSGI and Celery prefork workers fork after the app has imported and used the client.
Here the parent wraps real SDK clients against the emulator, uses them (a cached answer, a memo),
starts calls in flight (a slow JSON call, a stream it has read one chunk of, two async calls)
and forks several children while they are in flight — one of them from a thread other than the
main one. Each child makes the very requests the parent has in flight (a parent thread leads
them, and it does not exist in the child), a new request, the cached one (a local hit) and a
memo call, closes the PromptCache and exits. Every child is reaped against a deadline and
killed past it, so a hang fails the test instead of stalling the suite.

The ledger checks are separate tests (the ledger's own fork handling is item 7's work).

The SDK clients are built without keep-alive: their http connection pool is the SDK's, not
promptcache's, and is not fork-safe (a connection idle in the pool at the fork would be shared
by parent and children), which is not what these tests are about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from promptcache import PromptCache
from promptcache._store import DiskStore
from promptcache.testing import Emulator, LatencyModel

pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only"),
]

MODEL = "gpt-4o"
CHILDREN = 3
# A child makes a handful of calls answered in milliseconds; past this it is killed as hung.
DEADLINE = 10.0
# Each child must have finished within this many seconds of its fork.
PROMPT = 5.0
# Slow upstream calls: ~20k prompt tokens at 0.1 ms each is a 2 s wait before the answer. An
# identical request that follows reads the emulator's prompt cache and is answered at once.
LATENCY = LatencyModel(
    base_s=0.0, per_uncached_token_s=1e-4, per_cached_token_s=0.0, per_output_token_s=0.002
)
BIG = "Clause 7(b) of the handbook applies to every order. " * 1600


# What the memoized function computed in this process (a module global, not a captured value,
# so re-decorating it in a fresh PromptCache names the same function).
_COMPUTED: list[int] = []


def _square(x: int) -> int:
    _COMPUTED.append(x)
    return x * x


def _ask(text: str, *, big: bool = False, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    if big:
        messages.insert(0, {"role": "system", "content": f"{text}\n{BIG}"})
    return {"model": MODEL, "messages": messages, **extra}


def _clients(emu: Emulator) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    no_keepalive = httpx2.Limits(max_keepalive_connections=0)
    sync = openai.OpenAI(
        base_url=emu.openai_base_url,
        api_key="test-key",
        max_retries=0,
        timeout=30,
        http_client=httpx2.Client(limits=no_keepalive),
    )
    aio = openai.AsyncOpenAI(
        base_url=emu.openai_base_url,
        api_key="test-key",
        max_retries=0,
        timeout=30,
        http_client=httpx2.AsyncClient(limits=no_keepalive),
    )
    return sync, aio


# --- forking and reaping ---------------------------------------------------------------------


@dataclass
class Child:
    """One forked child: how it ended (``None``: killed at the deadline) and what it said."""

    pid: int
    forked: float
    exitcode: int | None = None
    seconds: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)


def _fork(work: Callable[[], dict[str, Any]], out: Path) -> int:
    """Fork; the child runs ``work``, writes its report (or traceback) to ``out`` and exits."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            report = work()
            out.write_text(json.dumps(report))
            code = 0
        except BaseException:
            out.write_text(json.dumps({"error": traceback.format_exc()}))
        finally:
            os._exit(code)
    return pid


def _fork_from_thread(work: Callable[[], dict[str, Any]], out: Path) -> int:
    """Fork from a thread that is not the main one (the child's only thread is that one)."""
    pids: list[int] = []
    t = threading.Thread(target=lambda: pids.append(_fork(work, out)))
    t.start()
    t.join()
    return pids[0]


def _fork_children(
    work: Callable[[int], dict[str, Any]], reports: Path, n: int = CHILDREN
) -> list[tuple[Child, Path]]:
    children: list[tuple[Child, Path]] = []
    for i in range(n):
        out = reports / f"child-{i}.json"
        fork = _fork_from_thread if i == n - 1 else _fork
        started = time.monotonic()
        pid = fork(lambda i=i: work(i), out)  # type: ignore[misc]
        children.append((Child(pid, started), out))
    return children


def _reap(children: list[tuple[Child, Path]], deadline: float = DEADLINE) -> list[Child]:
    """Wait for every child until ``deadline`` seconds after its fork; kill the late ones."""
    waiting = {child.pid: (child, out) for child, out in children}
    while waiting:
        now = time.monotonic()
        for pid, (child, out) in list(waiting.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                child.exitcode = os.waitstatus_to_exitcode(status)
            elif now - child.forked > deadline:
                os.kill(pid, signal.SIGKILL)  # hung: a regression must fail, not stall the suite
                os.waitpid(pid, 0)
            else:
                continue
            child.seconds = now - child.forked
            if out.exists():
                child.report = json.loads(out.read_text())
            del waiting[pid]
        time.sleep(0.01)
    return [child for child, _ in children]


def _describe(children: list[Child]) -> str:
    lines = []
    for c in children:
        how = "killed at the deadline" if c.exitcode is None else f"exit {c.exitcode}"
        lines.append(f"child {c.pid}: {how} after {c.seconds:.2f}s {c.report.get('error', '')}")
    return "\n".join(lines)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _thread(target: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# --- children forked while calls are in flight -----------------------------------------------


@dataclass
class InFlight:
    """What the in-flight scenario left behind for the tests to check."""

    children: list[Child]
    directory: Path
    parent_requests: int
    child_requests: int
    parent_errors: list[BaseException]
    emu_calls: int = 0
    stored: list[bool] = field(default_factory=list)


def _in_flight_scenario(directory: Path, reports: Path) -> InFlight:
    with Emulator(latency=LATENCY) as emu:
        sync, aio = _clients(emu)
        pc = PromptCache(directory)
        client, aclient = pc.wrap(sync), pc.wrap(aio)
        square = pc.cached(_square)
        _COMPUTED.clear()

        # Used before the fork: an answer cached, a memo stored.
        client.chat.completions.create(**_ask("cached before the fork"))
        assert square(7) == 49
        pc.store.flush()

        # In flight at the fork: a slow JSON call, a stream read one chunk into, two async calls.
        errors: list[BaseException] = []
        first_chunk, release = threading.Event(), threading.Event()

        def stream() -> None:
            chunks = iter(client.chat.completions.create(**_ask("in flight: stream"), stream=True))
            next(chunks)
            first_chunk.set()
            release.wait(30)  # the parent is mid-way through reading it
            for _ in chunks:
                pass

        async def two_async() -> None:
            await asyncio.gather(
                *(
                    aclient.chat.completions.create(**_ask(f"in flight: async {i}", big=True))
                    for i in range(2)
                )
            )

        threads = [
            _thread(lambda: client.chat.completions.create(**_ask("in flight", big=True)), errors),
            _thread(stream, errors),
            _thread(lambda: asyncio.run(two_async()), errors),
        ]
        flights = pc.engine.flights
        _wait_for(lambda: len(flights) == 4 and first_chunk.is_set(), "4 calls in flight")

        def child(n: int) -> dict[str, Any]:  # pragma: no cover - runs in the child
            started = time.monotonic()
            # The very requests a parent thread leads: nobody in this process will finish them.
            client.chat.completions.create(**_ask("in flight", big=True))
            for _ in client.chat.completions.create(**_ask("in flight: stream"), stream=True):
                pass
            asyncio.run(aclient.chat.completions.create(**_ask("in flight: async 0", big=True)))
            # A new request, and the one cached before the fork (a local hit).
            client.chat.completions.create(**_ask(f"new in child {n}"))
            raw = client.chat.completions.with_raw_response.create(**_ask("cached before the fork"))
            assert raw.headers["x-promptcache"] == "hit"
            # The memo: a hit on what the parent stored, and a new value.
            assert square(7) == 49
            assert square(100 + n) == (100 + n) ** 2
            assert [7, 100 + n] == _COMPUTED
            pc.close()
            return {"seconds": time.monotonic() - started}

        children = _reap(_fork_children(child, reports))
        release.set()
        for t in threads:
            t.join(30)
        pc.close()
        sync.close()

        # What the children stored is there for everyone: their new requests and memo values.
        served = len(emu.calls)
        check = PromptCache(directory)
        again = check.wrap(_clients(emu)[0])
        stored = []
        for n in range(CHILDREN):
            raw = again.chat.completions.with_raw_response.create(**_ask(f"new in child {n}"))
            stored.append(raw.headers["x-promptcache"] == "hit")
        _COMPUTED.clear()
        square = check.cached(_square)
        stored += [square(100 + n) == (100 + n) ** 2 and not _COMPUTED for n in range(CHILDREN)]
        check.close()
        return InFlight(
            children=children,
            directory=directory,
            parent_requests=5,  # the cached call and the four in flight
            child_requests=5,  # three in flight in the parent, one new, one local hit
            parent_errors=errors,
            emu_calls=len(emu.calls) - served,
            stored=stored,
        )


@pytest.fixture(scope="module")
def in_flight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InFlight]:
    root = tmp_path_factory.mktemp("fork")
    reports = root / "reports"
    reports.mkdir()
    yield _in_flight_scenario(root / "pc", reports)


def test_children_forked_with_calls_in_flight_finish_promptly(in_flight: InFlight) -> None:
    children = in_flight.children
    assert len(children) == CHILDREN
    assert all(c.exitcode == 0 for c in children), _describe(children)
    assert all(c.seconds < PROMPT for c in children), _describe(children)
    assert not in_flight.parent_errors  # the parent's own calls finished normally too


def test_what_children_stored_is_in_the_shared_cache(in_flight: InFlight) -> None:
    assert all(c.exitcode == 0 for c in in_flight.children), _describe(in_flight.children)
    assert in_flight.stored == [True] * (2 * CHILDREN)
    assert in_flight.emu_calls == 0  # all of it answered from the cache


def test_every_child_call_is_in_the_ledger(in_flight: InFlight) -> None:
    with PromptCache(in_flight.directory) as pc:
        summary = pc.ledger.summary()
    # The re-check above made 3 calls too (local hits) through a PromptCache of its own.
    expected = in_flight.parent_requests + CHILDREN * in_flight.child_requests + CHILDREN
    assert summary.requests == expected, _describe(in_flight.children)


# --- a fork while the write-behind is writing ------------------------------------------------


class SlowDisk(DiskStore):
    """The disk store on a slow disk: in the process that opened it, each write takes 0.4 s.

    The write-behind writes a batch in one SQLite transaction, so that transaction is open
    while a write sleeps here: a fork at that moment must not leave the child locked out.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.slow_in = os.getpid()
        self.writing = threading.Event()

    def _set(self, cache: Any, key: str, value: bytes, ttl: float | None) -> None:
        # Every write (one or a write-behind batch, inside its transaction) goes through here.
        super()._set(cache, key, value, ttl)
        if os.getpid() == self.slow_in:
            self.writing.set()
            time.sleep(0.4)


def _sqlite_fds(path: Path) -> int:
    """How many of this process's file descriptors are open on the file ``path``."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile (the iterator's own descriptor)
            count += os.readlink(fd) == str(path)
    return count


def test_fork_while_the_write_behind_is_writing(tmp_path: Path) -> None:
    directory = tmp_path / "pc"
    with Emulator() as emu:
        sync, _ = _clients(emu)
        store = SlowDisk(directory / "responses")
        db = directory / "responses" / "cache.db"
        pc = PromptCache(directory, store=store)
        client = pc.wrap(sync)
        square = pc.cached(_square)
        _COMPUTED.clear()
        # One answer in a batch being written at the fork, one queued behind it.
        client.chat.completions.create(**_ask("written at the fork"))
        assert store.writing.wait(5)
        client.chat.completions.create(**_ask("queued at the fork"))

        def child(n: int) -> dict[str, Any]:  # pragma: no cover - runs in the child
            started = time.monotonic()
            inherited = _sqlite_fds(db)
            for text in ("written at the fork", "queued at the fork"):
                raw = client.chat.completions.with_raw_response.create(**_ask(text))
                assert raw.headers["x-promptcache"] == "hit", text
            client.chat.completions.create(**_ask(f"new in child {n}"))  # written behind
            assert square(300 + n) == (300 + n) ** 2  # written at once
            pc.close()  # warns (an error here) if a write failed
            return {
                "seconds": time.monotonic() - started,
                "inherited": inherited,
                "left_open": _sqlite_fds(db),
            }

        children = _reap(_fork_children(child, tmp_path))
        pc.close()
        sync.close()
        assert all(c.exitcode == 0 for c in children), _describe(children)
        assert all(c.seconds < PROMPT for c in children), _describe(children)
        # A child never closes a SQLite connection it inherited (closing it would roll back the
        # parent's transaction in the WAL index they share): it leaves them open, unused.
        assert all(c.report["left_open"] >= c.report["inherited"] > 0 for c in children)

        # The children's entries reached the shared store.
        served = len(emu.calls)
        with PromptCache(directory) as check:
            again = check.wrap(_clients(emu)[0])
            for n in range(CHILDREN):
                raw = again.chat.completions.with_raw_response.create(**_ask(f"new in child {n}"))
                assert raw.headers["x-promptcache"] == "hit"
            _COMPUTED.clear()
            square = check.cached(_square)
            assert [square(300 + n) for n in range(CHILDREN)] == [90000, 90601, 91204]
            assert _COMPUTED == []
        assert len(emu.calls) == served


# --- a prefork pool: multiprocessing's fork-context Pool -------------------------------------

# What the pool's workers find in the module after the fork (as a gunicorn app's globals).
_APP: dict[str, Any] = {}


def _pool_task(n: int) -> float:  # pragma: no cover - runs in a pool worker
    started = time.monotonic()
    client, square = _APP["client"], _APP["square"]
    client.chat.completions.create(**_ask("in flight in the master", big=True))
    client.chat.completions.create(**_ask(f"new in task {n}"))
    raw = client.chat.completions.with_raw_response.create(**_ask("cached in the master"))
    assert raw.headers["x-promptcache"] == "hit"
    assert square(7) == 49 and square(400 + n) == (400 + n) ** 2
    return time.monotonic() - started


@dataclass
class Pooled:
    """How the prefork pool went: each task's duration, or why it did not finish."""

    seconds: list[float]
    error: str | None
    directory: Path
    master_requests: int
    task_requests: int


def _pool_scenario(directory: Path) -> Pooled:
    with Emulator(latency=LATENCY) as emu:
        sync, _ = _clients(emu)
        pc = PromptCache(directory)
        client = pc.wrap(sync)
        square = pc.cached(_square)
        client.chat.completions.create(**_ask("cached in the master"))
        square(7)
        errors: list[BaseException] = []
        slow = _thread(
            lambda: client.chat.completions.create(**_ask("in flight in the master", big=True)),
            errors,
        )
        _wait_for(lambda: len(pc.engine.flights) == 1, "a call in flight")
        _APP.update(client=client, square=square)
        # maxtasksperchild=1: after the first two, workers are forked by the pool's own
        # worker-handler thread, not the main thread.
        pool = multiprocessing.get_context("fork").Pool(2, maxtasksperchild=1)
        seconds: list[float] = []
        error: str | None = None
        try:
            seconds = pool.map_async(_pool_task, range(4)).get(timeout=2 * DEADLINE)
        except multiprocessing.TimeoutError:
            error = f"the pool's tasks did not finish within {2 * DEADLINE:.0f}s"
            pool.terminate()
        except Exception:
            error = traceback.format_exc()
            pool.terminate()
        else:
            pool.close()
        pool.join()
        slow.join(30)
        pc.close()
        sync.close()
        _APP.clear()
        assert not errors
        return Pooled(seconds, error, directory, master_requests=2, task_requests=3)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Pooled:
    return _pool_scenario(tmp_path_factory.mktemp("pool") / "pc")


def test_prefork_pool_workers_finish_promptly(pooled: Pooled) -> None:
    assert pooled.error is None, pooled.error
    assert len(pooled.seconds) == 4
    assert all(s < PROMPT for s in pooled.seconds), pooled.seconds


def test_prefork_pool_workers_calls_are_in_the_ledger(pooled: Pooled) -> None:
    # Pool workers end with os._exit after their task: no atexit handler runs in them.
    with PromptCache(pooled.directory) as pc:
        summary = pc.ledger.summary()
    assert summary.requests == pooled.master_requests + 4 * pooled.task_requests

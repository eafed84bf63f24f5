"""Single-flight: concurrent identical requests make one upstream call.

The first caller for a key becomes the *leader* and goes upstream; later callers for the same
key are *followers* and wait until the leader is done. A leader that stored an answer hands
the encoded entry to its followers, who replay it; a leader that failed (error status, cut
stream, exception) hands over ``None`` and each follower then tries again itself, one of them
becoming the next leader. Threads and asyncio tasks (on any loop) can wait on the same flight.

Fork: a forked child starts with an empty table and fresh locks (``_after_fork``). The parent's
leaders are threads that do not exist in the child, so a child that joined their flights would
wait for them until ``flight_timeout``; it leads its own instead.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

__all__ = ["Flight", "SingleFlight"]

T = TypeVar("T")
_SLICE = 0.1


class Flight(Generic[T]):
    """One in-progress upstream call that others may wait for."""

    __slots__ = ("_done", "_lease", "_loops", "key", "owner", "progress", "result", "streaming")

    def __init__(self, key: str, owner: Hashable = None) -> None:
        self.key = key
        # Who leads (thread id, task id): a follower that is its own leader must not wait.
        self.owner: Any = owner
        # A streaming leader advances only as fast as its reader reads, and that reader may be
        # waiting on us: followers give up when ``progress`` (monotonic) goes stale.
        self.streaming = False
        self.progress = 0.0
        self.result: T | None = None
        # The distributed lock the leader holds for this key (``_store._flight.Lease``), if
        # any: released when the flight finishes, ``done`` when there is a result.
        self._lease: Any = None
        self._done = threading.Event()
        # Async followers: the future to resolve, and the loop that owns it.
        self._loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def lease(self) -> Any:
        """The distributed lock held for this flight (``_store._flight.Lease``) or ``None``."""
        return self._lease

    @lease.setter
    def lease(self, lease: Any) -> None:
        if lease is not None:
            lease.flight = self  # so a stalled stream can give its lock up
        self._lease = lease

    def wait(self, timeout: float | None) -> T | None:
        """Block until the leader finished; return what it handed over (``None`` on timeout)."""
        self._done.wait(timeout)
        return self.result

    @property
    def done(self) -> bool:
        """Whether the leader has finished (successfully or not)."""
        return self._done.is_set()

    def stalled(self, stall: float) -> bool:
        """Whether a streaming leader has not moved for ``stall`` seconds."""
        return self.streaming and time.monotonic() - self.progress > stall

    def wait_progress(self, timeout: float, stall: float) -> T | None:
        """Like :meth:`wait`, but give up early when a streaming leader stalls."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(min(_SLICE, max(0.0, deadline - time.monotonic()))):
            if self.stalled(stall) or time.monotonic() >= deadline:
                return None
        return self.result

    async def wait_async(self, timeout: float | None, lock: threading.Lock) -> T | None:
        """Wait without blocking the event loop; same result as :meth:`wait`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with lock:
            if self._done.is_set():
                return self.result
            self._loops.append((loop, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            return None
        return self.result

    def _finish(self, result: T | None) -> None:
        self.result = result
        self._done.set()
        for loop, fut in self._loops:
            # The follower may sit on another thread's loop; hand the wake-up to that loop.
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, fut)
        self._loops.clear()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SingleFlight(Generic[T]):
    """A registry of flights keyed by cache key, safe across threads and event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Flight[T]] = {}
        #: How many flights have finished: a caller that looked the store up before joining
        #: compares it to know whether an answer may have been stored since.
        self.finished = 0
        _live.add(self)

    def _after_fork(self) -> None:
        # In a forked child: the lock may have been held by a parent thread, and every flight
        # is led by a thread that is not here. Whoever still holds an old flight (a task of the
        # forking thread's own loop) sees it finished without an answer and tries again.
        self._lock = threading.Lock()
        for flight in self._flights.values():
            flight._done = threading.Event()
            flight._done.set()
            flight._loops = []
        self._flights = {}

    def join(self, key: str, owner: Hashable = None) -> tuple[Flight[T], bool]:
        """Return the flight for ``key`` and whether the caller (``owner``) is its leader."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = Flight(key, owner)
            self._flights[key] = flight
            return flight, True

    def finish(self, flight: Flight[T], result: T | None) -> None:
        """Wake every follower with ``result`` (``None``: failed); the leader calls it once."""
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
            self.finished += 1
            flight._finish(result)
        lease, flight.lease = flight.lease, None
        if lease is not None:
            lease.release(result is not None)

    def abandon(self, flight: Flight[T]) -> None:
        """Forget a flight whose leader stalled, so the next caller leads a new one.

        The old leader may still finish; it then wakes only the followers it still has.
        """
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]

    async def wait_async(self, flight: Flight[T], timeout: float | None) -> T | None:
        """Async follower wait (see :meth:`Flight.wait_async`)."""
        return await flight.wait_async(timeout, self._lock)

    async def wait_progress_async(
        self, flight: Flight[T], timeout: float, stall: float
    ) -> T | None:
        """Async :meth:`Flight.wait_progress`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            result = await flight.wait_async(min(_SLICE, remaining), self._lock)
            if flight.done:
                return result
            if flight.stalled(stall):
                return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._flights)


_live: weakref.WeakSet[SingleFlight[Any]] = weakref.WeakSet()


def _after_fork() -> None:
    for registry in list(_live):
        registry._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

"""Clocks for the emulator's cache lifetimes.

Cache TTLs (5m/1h on Anthropic, 30m/12h and in-memory/24h retention on OpenAI) are measured on an
injectable clock so tests can expire entries with ``clock.advance(301)`` instead of sleeping.
Latency simulation, by contrast, always uses real time: it exists to be felt by the client.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning seconds since the epoch."""

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        ...


class SystemClock:
    """Wall-clock time, optionally shifted forward with :meth:`advance`.

    The CLI server uses it so that ``POST /_emulator/clock/advance`` can expire cache entries
    of a long-running emulator without waiting.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return wall-clock time plus any offset added by :meth:`advance`."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Shift this clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()


class FakeClock:
    """A clock that only moves when told to, for deterministic TTL tests.

    Example::

        clock = FakeClock(start=1_800_000_000.0)
        clock.advance(301)  # a 5-minute Anthropic cache entry written at start is now gone
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the current fake time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to an absolute time (which must not be in this clock's past)."""
        with self._lock:
            if when < self._now:
                raise ValueError("a clock only moves forward")
            self._now = float(when)

"""An in-process store with TTLs and a size bound, for tests and short-lived programs."""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from promptcache._store._base import StoreStats

__all__ = ["MemoryStore"]


class MemoryStore:
    """A :class:`~promptcache._store.Store` in a dict: LRU-evicted past ``size_limit`` bytes.

    ``clock`` (default :func:`time.monotonic`) is injectable so tests can move time.
    Thread-safe; nothing is shared between processes.
    """

    blocking = False

    def __init__(
        self, *, size_limit: int = 2**28, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size_limit = size_limit
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        _live.add(self)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or ``None`` if absent or expired."""
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[1] is not None and item[1] <= self._clock():
                self._pop(key)
                item = None
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store bytes under ``key`` for ``ttl`` seconds (``None`` or ``inf``: until evicted)."""
        if type(value) is not bytes:
            raise TypeError(f"MemoryStore stores bytes only, not {type(value).__name__}")
        expires = None if ttl is None or ttl == math.inf else self._clock() + ttl
        with self._lock:
            self._pop(key)
            self._data[key] = (value, expires)
            self._size += len(value)
            while self._size > self.size_limit and self._data:
                self._pop(next(iter(self._data)))

    def _pop(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self._size -= len(item[0])
        return True

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with self._lock:
            self._pop(key)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix``; return how many were removed."""
        with self._lock:
            return sum(self._pop(k) for k in [k for k in self._data if k.startswith(prefix)])

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        with self._lock:
            n = len(self._data)
            self._data.clear()
            self._size = 0
            return n

    def stats(self) -> StoreStats:
        """Entries and bytes held, and the hits and misses so far."""
        with self._lock:
            n, size = len(self._data), self._size
            return StoreStats(n, size, self.hits, self.misses, "memory://", "memory")

    def close(self) -> None:
        """Nothing to release."""


_live: weakref.WeakSet[MemoryStore] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: a parent thread may have held a lock, and no thread will release it here.
    # The entries are the child's copy: a memory store is never shared between processes.
    for obj in list(_live):
        obj._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

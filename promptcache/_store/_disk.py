"""The default backend: a diskcache directory shared by every process on the machine.

Fork: SQLite keeps its lock bookkeeping per process, in memory that a forked child inherits,
so two rules hold here. A write transaction of ours never spans a fork (every write holds
``_gate``, which a fork takes first): one open in the parent at the fork would stay "held" in
the child's bookkeeping for good, and every later write of the child would fail as locked. And
a child never uses or closes a connection it inherited (closing one rolls back whatever the
parent has in flight on it, through the WAL index they share); it keeps them open, unused, for
its whole life (``_inherited``) and opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import diskcache

from promptcache._errors import ConfigError, StoreError
from promptcache._store._base import StoreStats

__all__ = ["DiskStore"]

# Columns as diskcache's ``Cache.set`` writes them for a str key and a small bytes value
# (raw key, value kept in the row: size 0, MODE_RAW, no file, no tag).
_INSERT_NEW = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag, size,"
    " mode, filename, value) VALUES (?, 1, ?, ?, ?, 0, NULL, 0, 1, NULL, ?)"
    " ON CONFLICT(key, raw) DO NOTHING"
)
_CULL_EVERY = 32
_EVICTION = ("least-recently-used", "least-recently-stored", "least-frequently-used")


class _BytesOnlyDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache ``Disk`` that stores and reads raw bytes only and never unpickles.

    diskcache pickles any value that is not bytes/str/number and unpickles rows marked so on
    read. A row marked "pickle" could be planted by anyone able to write the directory, so
    reading one is refused outright instead of trusted.
    """

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"DiskStore stores bytes only, not {type(value).__name__}")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY) or read:
            raise StoreError(f"refusing to read a non-bytes cache row (mode {mode})")
        return super().fetch(mode, filename, value, read)

    def put(self, key: Any) -> Any:
        if type(key) is not str:
            raise TypeError(f"DiskStore keys are str, not {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise StoreError("refusing to unpickle a cache key")
        return super().get(key, raw)


class _Connection(sqlite3.Connection):
    """A SQLite connection that can be weakly referenced (tracked until a fork, never beyond)."""


# Held by every write (and every new connection): a fork waits for it (``_before_fork``).
_gate = threading.RLock()
_open: weakref.WeakSet[_Connection] = weakref.WeakSet()
_caches: weakref.WeakSet[_Cache] = weakref.WeakSet()
_held: list[_Connection] = []  # the parent's connections, from just before a fork to just after
_inherited: list[_Connection] = []  # a child's connections from its parent: kept, never closed


class _Cache(diskcache.Cache):  # type: ignore[misc]
    """diskcache's ``Cache`` with connections we make and track, so a fork can leave them be.

    diskcache itself, seeing a new pid, closes the inherited connection of the thread that
    asks (and CPython closes the other threads' when it frees them in the child): we replace
    every cache's per-thread connections after a fork instead, and hold the old ones.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _caches.add(self)
        super().__init__(*args, **kwargs)

    @property
    def _con(self) -> sqlite3.Connection:
        # The hot path of every diskcache call: one attribute read (diskcache's own checks the
        # pid with a system call each time; the fork hook makes that unnecessary here).
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        return con if con is not None else self._connect()

    def _connect(self) -> sqlite3.Connection:
        with _gate:
            con = sqlite3.connect(
                os.path.join(self._directory, diskcache.core.DBNAME),
                timeout=self._timeout,
                isolation_level=None,
                factory=_Connection,
            )
            _open.add(con)
        self._local.con = con
        # As diskcache's own ``_con`` does: some pragmas hold per connection, so re-apply them.
        try:
            settings = con.execute("SELECT key, value FROM Settings").fetchall()
        except sqlite3.OperationalError:
            pass  # a new cache: no Settings table yet
        else:
            for key, value in settings:
                if key.startswith("sqlite_"):
                    self.reset(key, value, update=False)
        return con


def _before_fork() -> None:
    _gate.acquire()  # wait for writes in progress; no new one starts until the fork is done
    _held[:] = list(_open)


def _after_fork_in_parent() -> None:
    _held.clear()
    _gate.release()


def _after_fork_in_child() -> None:
    global _gate
    _gate = threading.RLock()
    _inherited.extend(_held)
    _held.clear()
    for cache in list(_caches):
        cache._local = threading.local()  # every thread (there is one) connects anew


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; a directory we create is 0700."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class DiskStore:
    """A :class:`~promptcache._store.Store` on a diskcache directory.

    Many processes may open the same directory at once (SQLite in WAL mode underneath); they
    share entries. Values are raw bytes, kept in SQLite when small and in files beside it when
    large; the directory is created 0700. ``size_limit`` (bytes) is enforced by evicting
    entries in ``eviction`` order after writes.
    """

    blocking = True
    #: Response entries are written behind, in batches (see ``_writebehind``): diskcache gives
    #: each thread its own SQLite connection, so a writer thread is safe.
    write_behind = True

    def __init__(
        self,
        directory: Path,
        *,
        size_limit: int = 2**30,
        # "least-recently-stored" keeps a hit read-only: diskcache's LRU policy writes to SQLite
        # on every read, which made hits 7-10x slower and serialised processes on its lock.
        eviction: str = "least-recently-stored",
    ) -> None:
        if eviction not in _EVICTION:
            raise ConfigError(f"eviction must be one of {_EVICTION}, not {eviction!r}")
        self.directory = Path(directory)
        make_private_dir(self.directory)
        with _gate:  # creating the tables and settings writes
            self._cache = _Cache(
                str(self.directory),
                disk=_BytesOnlyDisk,
                size_limit=size_limit,
                eviction_policy=eviction,
                # diskcache evicts up to `cull_limit` entries per write while over the limit;
                # its default of 10 empties a cache of a few large entries at once. Two per
                # write keeps the volume converging on the limit (each adds one) without
                # wiping it.
                cull_limit=2,
                # Short busy waits: a locked database must degrade to a miss, not stall a
                # request.
                timeout=2,
            )
        self.hits = 0
        self.misses = 0
        self._fast_writes = 0
        self._volume = int(self._cache.volume())
        self._small = int(self._cache.disk_min_file_size)

    def get(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or ``None``."""
        # No retry loop: a database locked for `timeout` seconds is a failure (SafeStore makes
        # it a miss with a warning) rather than a request stalled indefinitely.
        value = self._cache.get(key, default=None, retry=False)
        if value is None:
            self.misses += 1
            return None
        if type(value) is not bytes:
            raise StoreError(f"unexpected {type(value).__name__} value in the store")
        self.hits += 1
        return value

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store bytes under ``key`` for ``ttl`` seconds (``None``: until evicted)."""
        with _gate:
            self._set(key, value, ttl)

    def _set(self, key: str, value: bytes, ttl: float | None) -> None:
        cache = self._cache
        if type(value) is bytes and type(key) is str and len(value) < self._small:
            # The common write (a new key, a value kept in the row) as one statement instead
            # of diskcache's transaction of five (about 25 µs less per miss); diskcache's own
            # triggers keep its entry count and volume. An existing key (DO NOTHING: rowcount
            # 0) takes diskcache's path, which also removes the old value's file if it had one.
            # ``_con`` is this thread's connection (diskcache's private property, overridden by
            # ``_Cache``; tests/core/test_writebehind.py checks a round trip and the size limit).
            now = time.time()
            expire = None if ttl is None else now + ttl
            if cache._con.execute(_INSERT_NEW, (key, now, expire, now, value)).rowcount == 1:
                self._fast_writes += 1
                # Eviction as diskcache does it, but only when due: when the volume may be over
                # the limit (last measured volume plus what we added since: measuring costs
                # about 25 µs) and every _CULL_EVERY writes (expired rows, other processes).
                self._volume += len(value) + len(key) + 64
                if self._fast_writes % _CULL_EVERY == 0 or self._volume > cache.size_limit:
                    cache.cull(retry=False)
                    self._volume = int(cache.volume())
                return
        cache.set(key, value, expire=ttl, retry=False)

    def set_many(self, items: list[tuple[str, bytes, float | None]]) -> None:
        """Store several values in one transaction (a write-behind batch)."""
        with _gate, self._cache.transact(retry=False):
            for key, value, ttl in items:
                self.set(key, value, ttl=ttl)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with _gate:
            self._cache.delete(key, retry=False)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix``; return how many were removed."""
        doomed = [k for k in self._cache.iterkeys() if isinstance(k, str) and k.startswith(prefix)]
        with _gate:
            return sum(bool(self._cache.delete(k, retry=True)) for k in doomed)

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        with _gate:
            removed: int = self._cache.clear(retry=True)
        return removed

    def stats(self) -> StoreStats:
        """Entries and bytes in the directory, and this object's hits and misses."""
        return StoreStats(
            entries=len(self._cache),
            size_bytes=int(self._cache.volume()),
            hits=self.hits,
            misses=self.misses,
            location=str(self.directory),
            backend="disk",
        )

    def release_thread(self) -> None:
        """Close the calling thread's SQLite connection (a writer thread that ends calls it)."""
        with _gate:  # the last connection to close checkpoints: a write
            self._cache.close()

    def close(self) -> None:
        """Close the SQLite connection."""
        with _gate:
            self._cache.close()

    def __repr__(self) -> str:
        return f"DiskStore({os.fspath(self.directory)!r})"

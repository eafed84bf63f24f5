"""The default backend: a diskcache directory shared by every process on the machine.

Three things diskcache does not do on its own are done here:

* **Private files.** Every value is kept inside the SQLite database (none in files beside it)
  and the database is created 0600 before SQLite opens it, so ``cache.db`` and its
  ``-wal``/``-shm`` files are 0600 and the directory 0700 whatever the umask.
* **Every connection closed.** diskcache opens one SQLite connection per thread and its
  ``close()`` closes the calling thread's only; :class:`_Cache` keeps hold of them all.
* **A corrupt database heals.** When SQLite says the file is not a database or is malformed,
  the file (with its ``-wal``/``-shm``) is moved aside as ``cache.db.corrupt-<time>-<pid>``
  and an empty store takes its place; one :class:`~promptcache.StoreWarning` says so.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import diskcache

from promptcache._errors import ConfigError, StoreError, StoreWarning
from promptcache._store._base import StoreStats
from promptcache._store._directory import make_private_dir, private_file

__all__ = ["DiskStore", "StoreRebuilt"]

T = TypeVar("T")

DB_NAME: Final = diskcache.core.DBNAME  # "cache.db"
_SIDE_FILES: Final = ("", "-wal", "-shm", "-journal")
_ASIDE: Final = ".corrupt-"
# How many moved-aside databases to keep for a post-mortem (the oldest go first).
_KEEP_ASIDE: Final = 2
# Values of any size stay in SQLite rather than in files beside it: one private file to
# secure, to move aside when corrupt, and to empty. Measured (diskcache 5.6, SQLite 3.40):
# in-row reads are as fast or faster up to 100 kB (13.8/12.2/20.8 µs at 10/40/100 kB against
# 14.0/25.3/32.8 µs from files) and slower at 1 MB (191 against 124 µs); writes of 100 kB and
# more are slower in-row but happen on the write-behind thread. Responses are mostly far below.
_IN_ROW: Final = 1 << 40
# Writes of smaller values take the one-statement fast path (see ``_set``); larger ones take
# diskcache's, which evicts at most ``cull_limit`` entries per write (the fast path's ``cull``
# evicts ten at a time: a few large entries would all go at once).
_FAST_MAX: Final = 2**15
# SQLITE_CORRUPT and SQLITE_NOTADB (primary result codes): the file is damaged, not busy.
_CORRUPT_CODES: Final = frozenset({11, 26})

# Columns as diskcache's ``Cache.set`` writes them for a str key and a bytes value kept in the
# row (raw key, size 0, MODE_RAW, no file, no tag).
_INSERT_NEW = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag, size,"
    " mode, filename, value) VALUES (?, 1, ?, ?, ?, 0, NULL, 0, 1, NULL, ?)"
    " ON CONFLICT(key, raw) DO NOTHING"
)
_CULL_EVERY = 32
_EVICTION = ("least-recently-used", "least-recently-stored", "least-frequently-used")


class StoreRebuilt(StoreError):
    """The store's database was corrupt: it was moved aside and an empty one started."""


def _is_corrupt(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _CORRUPT_CODES
    text = str(exc)
    return "file is not a database" in text or "malformed" in text


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


# Held by every write (and by opening a store): a fork waits for it. SQLite keeps its lock
# bookkeeping in process memory that a forked child inherits, so a write transaction open in
# the parent at the fork would stay "held" in the child and every later write of the child
# would fail as locked.
_gate = threading.RLock()


def _after_fork_in_child() -> None:
    global _gate
    _gate = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=lambda: _gate.acquire(),
        after_in_parent=lambda: _gate.release(),
        after_in_child=_after_fork_in_child,
    )


# A forked child's connections from its parent: never used, never closed (see _Cache).
_INHERITED: list[sqlite3.Connection] = []


class _Cache(diskcache.Cache):  # type: ignore[misc]
    """diskcache's ``Cache``, keeping hold of every thread's SQLite connection.

    diskcache opens a connection per thread (``threading.local``) and its ``close()`` closes
    the calling thread's only: a cache used from ``asyncio.to_thread`` workers and a writer
    thread kept three descriptors (db, -wal, -shm) per thread open after ``close()``. Here
    every connection is registered and made with ``check_same_thread=False``, so
    :meth:`close_all` can close them all from one thread; the connections of threads that have
    ended are closed when the next connection is opened. The connection logic is diskcache's
    ``_con`` (5.6), otherwise unchanged.
    """

    def __init__(self, directory: str, **settings: Any) -> None:
        self._pc_pid = os.getpid()
        self._pc_lock = threading.Lock()
        self._pc_cons: dict[int, tuple[threading.Thread, sqlite3.Connection]] = {}
        try:
            super().__init__(directory, **settings)
        except BaseException:
            self.close_all()
            raise

    @property
    def _con(self) -> sqlite3.Connection:
        local = self._local
        con: sqlite3.Connection | None = getattr(local, "con", None)
        if con is not None and getattr(local, "pid", None) == os.getpid():
            return con
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        if self._pc_pid != pid:
            # A forked child: the parent's connections (and a lock another thread may have held
            # at the fork) are not the child's. They are forgotten, never used or closed here.
            self._pc_pid = pid
            self._pc_lock = threading.Lock()
            # Kept referenced for the child's whole life: closing (or freeing) an inherited
            # connection rolls back what the parent has in flight through the shared WAL index.
            _INHERITED.extend(c for _, c in self._pc_cons.values())
            self._pc_cons = {}
        if getattr(local, "pid", None) != pid:
            inherited = local.__dict__.pop("con", None)
            if inherited is not None:
                _INHERITED.append(inherited)
            local.pid = pid
        con = sqlite3.connect(
            os.path.join(self._directory, DB_NAME),
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        thread = threading.current_thread()
        ident = threading.get_ident()
        with self._pc_lock:
            ended = [
                c
                for i, (t, c) in self._pc_cons.items()
                if i == ident or not t.is_alive()  # an ident is reused once its thread ended
            ]
            self._pc_cons = {i: tc for i, tc in self._pc_cons.items() if tc[1] not in ended}
            self._pc_cons[ident] = (thread, con)
        for old in ended:
            with contextlib.suppress(sqlite3.Error):
                old.close()
        local.con = con
        # As diskcache: some pragmas are per connection, so re-apply the stored ones.
        try:
            settings = con.execute("SELECT key, value FROM Settings").fetchall()
        except sqlite3.OperationalError:
            pass
        else:
            for key, value in settings:
                if key.startswith("sqlite_"):
                    self.reset(key, value, update=False)
        return con

    def close(self) -> None:
        """Close the calling thread's connection (diskcache's ``close``)."""
        local = self._local
        con = local.__dict__.pop("con", None)
        if con is None or getattr(local, "pid", None) != os.getpid():
            return  # none, or the parent's (a forked child never touches those)
        with self._pc_lock:
            ident = threading.get_ident()
            if ident in self._pc_cons and self._pc_cons[ident][1] is con:
                del self._pc_cons[ident]
        con.close()

    def close_all(self) -> None:
        """Close every thread's connection; a later use opens new ones."""
        if self._pc_pid != os.getpid():
            cons = []  # a forked child: the parent's connections are not ours to close
            _INHERITED.extend(c for _, c in self._pc_cons.values())
            self._pc_pid, self._pc_lock, self._pc_cons = os.getpid(), threading.Lock(), {}
        else:
            with self._pc_lock:
                cons = [c for _, c in self._pc_cons.values()]
                self._pc_cons = {}
        # A fresh local drops every thread's reference to a closed connection at once.
        self._local = threading.local()
        for con in cons:
            with contextlib.suppress(sqlite3.Error):
                con.close()


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory`` (processes healing one store take turns)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: heal without a lock
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class DiskStore:
    """A :class:`~promptcache._store.Store` on a diskcache directory.

    Many processes may open the same directory at once (SQLite in WAL mode underneath); they
    share entries. Values are raw bytes kept inside the database; the directory is 0700 and the
    database files 0600. ``size_limit`` (bytes) is enforced by evicting entries in ``eviction``
    order after writes. A corrupt database is moved aside and replaced by an empty one
    (a :class:`StoreRebuilt` error from the call that found it, or a
    :class:`~promptcache.StoreWarning` from the calls that do not fail on it: opening,
    ``delete``, ``clear``, ``stats``).
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
        self._settings: dict[str, Any] = {
            "disk": _BytesOnlyDisk,
            "size_limit": size_limit,
            "eviction_policy": eviction,
            # diskcache evicts up to `cull_limit` entries per write while over the limit; its
            # default of 10 empties a cache of a few large entries at once. Two per write keeps
            # the volume converging on the limit (each write adds one) without wiping it.
            "cull_limit": 2,
            # Short busy waits: a locked database must degrade to a miss, not stall a request.
            "timeout": 2,
            "disk_min_file_size": _IN_ROW,
        }
        self._heal_lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self.hits = 0
        self.misses = 0
        self._fast_writes = 0
        make_private_dir(self.directory)
        try:
            self._cache = self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._cache = self._heal_at_open(exc)
        self._volume = int(self._cache.volume())

    # --- opening and healing ------------------------------------------------------------------

    def _open(self) -> _Cache:
        with _gate:
            db = self.directory / DB_NAME
            private_file(db)
            for suffix in _SIDE_FILES[1:]:
                # Left by an older promptcache or a looser umask: ours, so made private.
                private_file(Path(f"{db}{suffix}"), create=False)
            cache = _Cache(str(self.directory), **self._settings)
            st = os.stat(db)
            self._identity = (st.st_dev, st.st_ino)
            return cache

    def _heal_at_open(self, exc: sqlite3.DatabaseError) -> _Cache:
        with _directory_lock(self.directory):
            try:
                return self._open()  # another process healed it meanwhile
            except sqlite3.DatabaseError as again:
                if not _is_corrupt(again):
                    raise
            aside = self._move_aside()
            cache = self._open()
        _warn(self._rebuilt_message(exc, aside), stacklevel=4)
        return cache

    def _move_aside(self) -> Path | None:
        """Rename the database and its side files to ``cache.db.corrupt-<time>-<pid>…``."""
        db = self.directory / DB_NAME
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        aside = self.directory / f"{DB_NAME}{_ASIDE}{stamp}-{os.getpid()}"
        moved = False
        for suffix in _SIDE_FILES:
            # The -wal must go with the database: left behind, SQLite would replay its frames
            # into the new, empty database.
            target = Path(f"{aside}{suffix}")
            try:
                os.replace(f"{db}{suffix}", target)
            except FileNotFoundError:
                continue
            moved = True
            with contextlib.suppress(OSError):
                os.chmod(target, 0o600)
        self._prune_aside()
        return aside if moved else None

    def _prune_aside(self, keep: int = _KEEP_ASIDE) -> int:
        """Delete all but the newest ``keep`` moved-aside databases; return files removed."""
        # Names are cache.db.corrupt-<UTC time>-<pid>[-wal|-shm|-journal]: sorted, oldest first.
        stems = sorted(
            {
                p.name.split("-wal")[0].split("-shm")[0].split("-journal")[0]
                for p in self.directory.glob(f"{DB_NAME}{_ASIDE}*")
            }
        )
        removed = 0
        for stem in stems[: max(0, len(stems) - keep)]:
            for suffix in _SIDE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.directory / f"{stem}{suffix}")
                    removed += 1
        return removed

    def _rebuilt_message(self, exc: BaseException, aside: Path | None) -> str:
        where = f"moved it aside to {aside.name} and " if aside is not None else ""
        return (
            f"promptcache: the response cache database {self.directory / DB_NAME} was corrupt "
            f"({exc}); {where}started an empty cache"
        )

    def _recover(self, cache: _Cache, exc: sqlite3.DatabaseError) -> str | None:
        """Deal with ``exc``, raised by an operation on ``cache``.

        Returns ``None`` when another thread already replaced ``cache`` (retry quietly), or the
        message to report when this call healed a corrupt database; re-raises ``exc`` when it
        is not corruption.
        """
        with self._heal_lock:
            if self._cache is not cache:
                return None
            if not _is_corrupt(exc):
                raise exc
            with _directory_lock(self.directory):
                try:
                    st = os.stat(self.directory / DB_NAME)
                    same = (st.st_dev, st.st_ino) == self._identity
                except FileNotFoundError:
                    same = False
                # Another process may have healed first: then the file at the path is its
                # fresh database, to be opened, not moved aside.
                aside = self._move_aside() if same else None
                fresh = self._open()
            self._cache = fresh
        cache.close_all()
        self._volume = 0
        if not same:
            return None
        return self._rebuilt_message(exc, aside)

    def _cold(self, op: Callable[[_Cache], T]) -> T:
        """Run a maintenance operation; on a corrupt database, heal, warn and run it again."""
        with _gate:
            cache = self._cache
            try:
                return op(cache)
            except sqlite3.DatabaseError as exc:
                message = self._recover(cache, exc)
            if message is not None:
                _warn(message, stacklevel=4)
            return op(self._cache)

    def _hot_failure(self, cache: _Cache, exc: sqlite3.DatabaseError) -> None:
        """After a failed lookup or write, heal a corrupt database and raise StoreRebuilt."""
        message = self._recover(cache, exc)
        if message is not None:
            raise StoreRebuilt(message) from exc

    # --- the store protocol -------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or ``None``."""
        cache = self._cache
        try:
            # No retry loop: a database locked for `timeout` seconds is a failure (SafeStore
            # makes it a miss with a warning) rather than a request stalled indefinitely.
            value = cache.get(key, default=None, retry=False)
        except sqlite3.DatabaseError as exc:
            self._hot_failure(cache, exc)
            value = None
        if value is None:
            self.misses += 1
            return None
        if type(value) is not bytes:
            raise StoreError(f"unexpected {type(value).__name__} value in the store")
        self.hits += 1
        return value

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store bytes under ``key`` for ``ttl`` seconds (``None`` or ``inf``: until evicted)."""
        with _gate:
            cache = self._cache
            try:
                self._set(cache, key, value, ttl)
            except sqlite3.DatabaseError as exc:
                self._hot_failure(cache, exc)

    def _set(self, cache: _Cache, key: str, value: bytes, ttl: float | None) -> None:
        if ttl is not None and ttl == float("inf"):
            ttl = None
        if type(value) is bytes and type(key) is str and len(value) < _FAST_MAX:
            # The common write (a new key) as one statement instead of diskcache's transaction
            # of five (about 25 µs less per miss); diskcache's own triggers keep its entry count
            # and volume. An existing key (DO NOTHING: rowcount 0) takes diskcache's path, which
            # also removes the old value's file if an older promptcache wrote one.
            # ``_con`` is this thread's connection (see _Cache; tests/core/test_writebehind.py
            # checks a round trip and the size limit).
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
        with _gate:
            cache = self._cache
            try:
                with cache.transact(retry=False):
                    for key, value, ttl in items:
                        self._set(cache, key, value, ttl)
            except sqlite3.DatabaseError as exc:
                self._hot_failure(cache, exc)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._cold(lambda cache: cache.delete(key, retry=False))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix``; return how many were removed."""

        def run(cache: _Cache) -> int:
            doomed = [k for k in cache.iterkeys() if isinstance(k, str) and k.startswith(prefix)]
            return sum(bool(cache.delete(k, retry=True)) for k in doomed)

        return self._cold(run)

    def clear(self) -> int:
        """Remove every entry, and the corrupt databases moved aside; return entries removed."""
        removed: int = self._cold(lambda cache: cache.clear(retry=True))
        self._prune_aside(keep=0)
        return removed

    def stats(self) -> StoreStats:
        """Entries and bytes in the directory, and this object's hits and misses."""
        entries, size = self._cold(lambda cache: (len(cache), int(cache.volume())))
        return StoreStats(
            entries=entries,
            size_bytes=size,
            hits=self.hits,
            misses=self.misses,
            location=str(self.directory),
            backend="disk",
        )

    def release_thread(self) -> None:
        """Close the calling thread's SQLite connection (a writer thread that ends calls it)."""
        with _gate:
            self._cache.close()

    def close(self) -> None:
        """Close every SQLite connection this store opened, in every thread."""
        with _gate:
            self._cache.close_all()

    def __repr__(self) -> str:
        return f"DiskStore({os.fspath(self.directory)!r})"


def _warn(message: str, *, stacklevel: int) -> None:
    warnings.warn(message, StoreWarning, stacklevel=stacklevel + 1)

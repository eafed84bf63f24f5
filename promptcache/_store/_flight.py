"""Distributed single-flight: one upstream call per request across processes and machines.

The in-process single-flight (:mod:`promptcache._singleflight`) stays in front: only its
leader for a key asks here. Then, per cache key:

- **Redis store**: a lock key ``promptcache-lock:<keyspace>:<key>`` taken with a set-if-absent
  and an expiry (the *lease*) holding a random owner token, in one small Lua script that also
  says who holds it. Only the owner releases it (compare-and-set in Lua): after a success the
  value becomes ``done`` for a short *grace* (followers keep polling for the entry, which the
  leader's write-behind stores a few tens of milliseconds later); after a failure it is
  deleted (followers take over at once). A background thread renews held leases every third
  of a lease, so a long stream keeps its lock; a leader killed with SIGKILL stops renewing and
  its lease expires.
- **Disk store**: a byte-range lock on one of 4096 slots of ``locks/flight.lock`` (a bucket
  of the key's hash; see :class:`_LockFile`). The kernel releases it when its process dies,
  SIGKILL included. The leader writes ``done <key digest>`` into the slot before unlocking
  after a success (``fail`` after a failure), which plays the role of Redis' ``done`` value.
  (A leader killed right after an earlier success for the same key in that bucket leaves that
  ``done`` behind: its followers then wait the grace period before going upstream.)

Followers poll the store for the leader's entry with backoff (10 ms growing to 250 ms, with
jitter) and go upstream themselves after :attr:`LockOptions.wait` seconds, when the leader
failed, or when its lease expired. Lock trouble of any kind (Redis down, the circuit open, a
file that cannot be opened) means going upstream without a lock: a call is never broken by it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import math
import os
import random
import secrets
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from promptcache._errors import ConfigError

if TYPE_CHECKING:
    from promptcache._store._entry import Entry
    from promptcache._store._redis import RedisStore
    from promptcache._store._safe import SafeStore

__all__ = ["FileLocks", "Lease", "LockOptions", "Locks", "RedisLocks", "open_locks"]

log = logging.getLogger("promptcache")

_BUCKETS: Final = 4096
_FIRST_POLL: Final = 0.01
_MAX_POLL: Final = 0.25
#: Seconds without a chunk pulled after which a streaming leader gives its lock up (as the
#: in-process followers of a stalled stream stop waiting: ``Engine.stream_stall``).
STALL: Final = 1.0
_TICK: Final = 0.25
_IDLE: Final = 2.0
_DONE: Final = b"done"
#: Redis locks are ``promptcache-lock:<keyspace id>:<key>``.
LOCK_PREFIX: Final = "promptcache-lock:"

# Take the lock, or say who holds it: 1 when the caller holds it now (taken, or already its
# own: a retry after a lost reply), else the current value (another token, or "done").
# Idempotent, so the store may retry it after a reset connection.
_ACQUIRE: Final = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
# Release only one's own lock: "done" for the grace period after a success, gone after a failure.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3])
else redis.call('DEL', KEYS[1]) end
return 1
"""
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"${name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"${name} must be a number of seconds ≥ 0, not {raw!r}")
    return value


@dataclass(frozen=True)  # no slots: ``from_env`` reads the class defaults
class LockOptions:
    """How long a distributed single-flight waits and holds (environment: ``from_env``)."""

    #: Seconds a leader's Redis lock lives without renewal (a dead leader frees it this late).
    lease: float = 10.0
    #: Longest a follower waits for the leader's entry before going upstream itself.
    wait: float = 60.0
    #: After a leader succeeded, how long followers keep polling for its entry to appear.
    grace: float = 2.0

    @classmethod
    def from_env(cls) -> LockOptions:
        """``$PROMPTCACHE_LOCK_LEASE``, ``$PROMPTCACHE_LOCK_WAIT`` (0: off), ``…_GRACE``."""
        lease = _seconds("PROMPTCACHE_LOCK_LEASE", cls.lease)
        if lease < 0.1:
            raise ConfigError("$PROMPTCACHE_LOCK_LEASE must be at least 0.1 seconds")
        return cls(
            lease=lease,
            wait=_seconds("PROMPTCACHE_LOCK_WAIT", cls.wait),
            grace=_seconds("PROMPTCACHE_LOCK_GRACE", cls.grace),
        )


class Lease:
    """A held lock; :meth:`release` once, with whether an entry was stored."""

    __slots__ = ("_locks", "flight", "key", "released", "token")

    def __init__(self, locks: Locks, key: str, token: Any) -> None:
        self._locks = locks
        self.key = key
        self.token = token
        self.released = False
        #: The in-process flight this lease covers (set by ``Flight.lease``): a stalled
        #: stream gives its lock up.
        self.flight: Any = None

    def release(self, success: bool) -> None:
        """Hand the lock on (never raises: followers then wait for the lease to expire)."""
        if self.released:
            return
        self.released = True
        self._locks.mine.discard(self.key)
        self._locks.keeper.forget(self)
        try:
            self._locks.release(self, success)
        except Exception as exc:
            log.info("promptcache: could not release the lock for %s: %r", self.key, exc)


Lookup = Callable[[], "Entry | None"]


class Locks:
    """What both backends share: the follower's wait loop."""

    def __init__(self, options: LockOptions) -> None:
        self.options = options
        #: Diagnostics: leads taken, answers received from another process's leader, waits
        #: that ended by going upstream (timeout, failed or dead leader, lock trouble).
        self.leads = 0
        self.followed = 0
        self.gave_up = 0
        #: Keys this process holds a lock for. A second in-process flight for one of them (its
        #: first leader is a stream nobody reads yet, or was abandoned as stalled) must not
        #: wait for a lock its own process holds: it goes upstream, as without these locks.
        self.mine: set[str] = set()
        self.keeper = _Keeper(self)
        _live.add(self)

    def close(self) -> None:
        """Let the keeper thread end (held leases are still released by their flights)."""
        self.keeper.stop()

    def renew(self, lease: Lease) -> None:
        """Extend a held lease (nothing to do for a flock: it lasts while its process does)."""

    def send_release(self, lease: Lease, success: bool) -> None:
        """Release on the keeper's thread (backends that release off the call path)."""

    # Backend hooks: ``_try`` returns a Lease (the caller leads), or a state: "done" (a leader
    # succeeded), "held" (someone leads), "free-after-wait" handled by the backend.
    def _try(self, key: str, waited: bool) -> Lease | str:
        raise NotImplementedError

    def release(self, lease: Lease, success: bool) -> None:
        raise NotImplementedError

    def lead(self, key: str, lookup: Lookup) -> Entry | Lease | None:
        """Take the lock for ``key``, or wait for the process that holds it.

        Returns a :class:`Lease` (go upstream and release it), the leader's entry (replay it),
        or ``None`` (go upstream without a lock: waited too long, leader failed, lock trouble).
        """
        if self.options.wait <= 0 or key in self.mine:
            return None
        try:
            return self._lead(key, lookup)
        except Exception as exc:  # a lock never breaks a call: go upstream
            log.info("promptcache: single-flight lock for %s unavailable: %r", key, exc)
            self.gave_up += 1
            return None

    def _lead(self, key: str, lookup: Lookup) -> Entry | Lease | None:
        got = self._try(key, False)
        if isinstance(got, Lease):
            self.leads += 1
            self.mine.add(key)
            return got
        start = time.monotonic()
        deadline = start + self.options.wait
        done_since: float | None = time.monotonic() if got == "done" else None
        delay = _FIRST_POLL
        while True:
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 1.5, _MAX_POLL)
            entry = lookup()
            if entry is not None:
                self.followed += 1
                return entry
            now = time.monotonic()
            if now >= deadline:
                self.gave_up += 1
                return None
            if done_since is not None:
                if now - done_since >= self.options.grace:
                    self.gave_up += 1  # the leader's entry never came: go on ourselves
                    return None
                continue
            got = self._try(key, True)
            if isinstance(got, Lease):
                # The leader is gone: failed, dead, or done a moment ago (its entry may have
                # landed since the lookup above).
                entry = lookup()
                if entry is not None:
                    got.release(True)
                    self.followed += 1
                    return entry
                self.leads += 1
                self.mine.add(key)
                return got
            if got == "done":
                done_since = now
                delay = _FIRST_POLL


class RedisLocks(Locks):
    """Locks in the shared Redis store (see the module docstring)."""

    def __init__(self, store: RedisStore, options: LockOptions) -> None:
        super().__init__(options)
        self.store = store

    def _full(self, key: str) -> str:
        # Outside the entries' ``promptcache:`` prefix, so that entry counts (``cache stats``)
        # never see locks; they expire on their own (a lease, or the grace after a release).
        from promptcache._store._redis import KEY_PREFIX  # loaded already: this is a Redis store

        return LOCK_PREFIX + self.store.full_key(key)[len(KEY_PREFIX) :]

    def _try(self, key: str, waited: bool) -> Lease | str:
        client: Any = self.store.client  # redis-py's eval is untyped
        full = self._full(key)
        token = secrets.token_hex(16)
        lease_ms = str(max(1, round(self.options.lease * 1000)))
        got = self.store.call(
            lambda: client.eval(_ACQUIRE, 1, full, token, lease_ms), idempotent=True
        )
        if got == 1:
            lease = Lease(self, key, token)
            self.keeper.add(lease)
            return lease
        return "done" if bytes(got) == _DONE else "held"

    def release(self, lease: Lease, success: bool) -> None:
        # Off the call path: the keeper thread sends it (a stream's last chunk, an answer on
        # the event loop never wait for Redis).
        self.keeper.send(lease, success)

    def send_release(self, lease: Lease, success: bool) -> None:
        client: Any = self.store.client  # redis-py's eval is untyped
        full = self._full(lease.key)
        grace_ms = str(max(1, round(self.options.grace * 1000)))
        flag = "1" if success else "0"
        self.store.call(
            lambda: client.eval(_RELEASE, 1, full, lease.token, flag, grace_ms),
            idempotent=True,
        )

    def renew(self, lease: Lease) -> None:
        client: Any = self.store.client  # redis-py's eval is untyped
        full = self._full(lease.key)
        lease_ms = str(max(1, round(self.options.lease * 1000)))
        self.store.call(
            lambda: client.eval(_RENEW, 1, full, lease.token, lease_ms), idempotent=True
        )


class _Keeper:
    """One daemon thread per lock table, while it holds leases; ends when it holds none.

    It renews Redis leases every third of a lease, sends Redis releases (off the call path),
    and gives up the lock of a streaming leader whose reader has not pulled a chunk for
    :data:`STALL` seconds (the reader may be waiting for something else, even for one of
    the followers): the followers then go upstream themselves, as the in-process followers
    of a stalled stream do.
    """

    def __init__(self, locks: Locks) -> None:
        self.locks = locks
        self._reset()
        _keepers.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held: dict[int, Lease] = {}
        self._releases: list[tuple[Lease, bool]] = []
        self._thread: threading.Thread | None = None
        self._stop = False

    def stop(self) -> None:
        """End the thread once it holds nothing (``PromptCache.close``); ``add`` restarts it."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def add(self, lease: Lease) -> None:
        with self._cond:
            self._held[id(lease)] = lease
            self._start()

    def forget(self, lease: Lease) -> None:
        with self._cond:
            self._held.pop(id(lease), None)

    def send(self, lease: Lease, success: bool) -> None:
        with self._cond:
            self._releases.append((lease, success))
            self._start()
            self._cond.notify_all()

    def _start(self) -> None:
        self._stop = False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="promptcache-locks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        period = self.locks.options.lease / 3
        next_renew = time.monotonic() + period
        idle = 0.0
        while True:
            with self._cond:
                if not self._releases and not self._held:
                    # Linger a moment (polling, never woken by ``add``): a busy process takes
                    # leases all the time, and a thread started for each costs more than the
                    # lock itself.
                    idle = idle or time.monotonic()
                    if self._stop or time.monotonic() - idle >= _IDLE:
                        self._thread = None
                        return
                else:
                    idle = 0.0
                if not self._releases:
                    self._cond.wait(min(_TICK, max(0.0, next_renew - time.monotonic())))
                releases, self._releases = self._releases, []
                held = list(self._held.values())
            for lease, success in releases:
                try:
                    self.locks.send_release(lease, success)
                except Exception as exc:  # the lease then expires on its own
                    log.info("promptcache: lock release for %s failed: %r", lease.key, exc)
            for lease in held:
                flight = lease.flight
                if flight is not None and flight.stalled(STALL):
                    lease.release(False)
            if time.monotonic() >= next_renew:
                next_renew = time.monotonic() + period
                for lease in held:
                    if lease.released:
                        continue
                    try:
                        self.locks.renew(lease)
                    except Exception as exc:
                        log.info("promptcache: lock renewal for %s failed: %r", lease.key, exc)

    def _after_fork(self) -> None:
        # A forked child holds none of its parent's locks (the parent releases them).
        self._reset()


class _LockFile:
    """One directory's lock file as this process holds it, shared by every ``FileLocks`` on it.

    One file of :data:`_BUCKETS` slots, each a byte range locked with an open-file-description
    lock (``F_OFD_SETLK``; a POSIX record lock where the platform has none). Locking a range is a
    system call on a descriptor opened once, where a file per bucket cost an ``open`` (and,
    the first time, a create) on every miss. The kernel drops the locks when the process dies,
    SIGKILL included. Within the process, a bucket's range is taken once and shared by the keys
    that hash to it (counted here): only the same key twice is "held".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mutex = threading.Lock()
        self.fd: int | None = None
        self.pid = 0
        #: ``FileLocks`` using this file: the descriptor is closed when the last one closes.
        self.users = 0
        #: bucket -> keys this process leads in it (the range is locked while any is).
        self.holders: dict[int, set[str]] = {}

    def _descriptor(self) -> int:
        if self.fd is None or self.pid != os.getpid():
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.pid = os.getpid()
        return self.fd

    def acquire(self, bucket: int, key: str) -> bool:
        with self.mutex:
            keys = self.holders.get(bucket)
            if keys is not None:
                if key in keys:
                    return False
                keys.add(key)
                return True
            if not _range_lock(self._descriptor(), bucket, exclusive=True):
                return False
            self.holders[bucket] = {key}
            return True

    def state(self, bucket: int) -> bytes:
        with self.mutex:
            return os.pread(self._descriptor(), _SLOT, bucket * _SLOT).partition(b"\n")[0]

    def release(self, bucket: int, key: str, state: bytes | None) -> None:
        with self.mutex:
            keys = self.holders.get(bucket)
            if keys is None or key not in keys:
                return  # a forked child's copy of its parent's lease: the parent releases it
            fd = self._descriptor()
            try:
                if state is not None:
                    os.pwrite(fd, state + b"\n", bucket * _SLOT)
            finally:
                keys.discard(key)
                if not keys:
                    del self.holders[bucket]
                    _range_lock(fd, bucket, exclusive=False)

    def after_fork(self) -> None:
        # The child shares the parent's open file description, so its locks would be the
        # parent's: close that copy (the parent keeps its locks) and open a new one when needed.
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None
        self.holders = {}
        self.mutex = threading.Lock()


def _range_lock(fd: int, bucket: int, *, exclusive: bool) -> bool:
    """Lock (or unlock) a bucket's slot without blocking; ``False`` when another holds it."""
    kind = fcntl.F_WRLCK if exclusive else fcntl.F_UNLCK
    try:
        if _OFD is not None:
            # struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks).
            fcntl.fcntl(fd, _OFD, struct.pack("hhqqi4x", kind, 0, bucket * _SLOT, _SLOT, 0))
        else:
            op = (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_UN
            fcntl.lockf(fd, op, _SLOT, bucket * _SLOT, 0)
    except OSError as exc:
        if exclusive and exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


# Open-file-description locks (Linux): owned by our descriptor, not by the process, so two
# caches on one directory in one process exclude each other too. Elsewhere, POSIX record locks
# (per process; the in-process table in ``_LockFile`` covers the rest).
_OFD: Final[int | None] = getattr(fcntl, "F_OFD_SETLK", None) if sys.platform == "linux" else None
_SLOT: Final = 64
_files: dict[Path, _LockFile] = {}
_files_lock = threading.Lock()


def _lock_file(path: Path) -> _LockFile:
    with _files_lock:
        found = _files.get(path)
        if found is None:
            found = _files[path] = _LockFile(path)
        found.users += 1
        return found


def _drop_lock_file(file: _LockFile) -> None:
    with _files_lock:
        file.users -= 1
        if file.users > 0:
            return
        _files.pop(file.path, None)
        with file.mutex:
            if file.fd is not None and file.pid == os.getpid():
                # Closing drops any range still locked (a flight abandoned without release).
                with contextlib.suppress(OSError):
                    os.close(file.fd)
            file.fd = None
            file.holders = {}


class FileLocks(Locks):
    """Locks for processes sharing a directory: a locked byte range of one file per key hash."""

    def __init__(self, directory: Path, options: LockOptions) -> None:
        super().__init__(options)
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.file = _lock_file(directory.resolve() / "flight.lock")
        self._closed = False

    def close(self) -> None:
        super().close()
        if not self._closed:
            self._closed = True
            _drop_lock_file(self.file)

    @staticmethod
    def _bucket(key: str) -> int:
        return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest()) % _BUCKETS

    @staticmethod
    def _done(key: str) -> bytes:
        # Fixed length (a slot is small): the key's digest, not the key.
        return b"done " + hashlib.blake2b(key.encode(), digest_size=16).hexdigest().encode()

    def _try(self, key: str, waited: bool) -> Lease | str:
        bucket = self._bucket(key)
        if not self.file.acquire(bucket, key):
            return "held"
        if waited:
            try:
                state = self.file.state(bucket)
            except BaseException:
                self.file.release(bucket, key, None)
                raise
            if state == self._done(key):
                # The leader for this key succeeded a moment ago: wait for its entry unlocked.
                self.file.release(bucket, key, None)
                return "done"
        lease = Lease(self, key, bucket)
        self.keeper.add(lease)  # watched for a stalled stream
        return lease

    def release(self, lease: Lease, success: bool) -> None:
        # A line, so that a longer older one beyond it needs no truncating.
        self.file.release(lease.token, lease.key, self._done(lease.key) if success else b"fail")


def _inner_store(store: SafeStore) -> Any:
    inner: Any = store.inner
    # An EncryptedStore wraps the backend (the lock keys hold no secret and need no sealing).
    while type(inner).__name__ == "EncryptedStore":
        inner = inner.inner
    return inner


def open_locks(store: SafeStore | None) -> Locks | None:
    """Return the distributed locks for ``store``'s backend (``None``: none apply)."""
    if store is None:
        return None
    options = LockOptions.from_env()
    if options.wait <= 0:
        return None
    inner = _inner_store(store)
    from promptcache._store._disk import DiskStore

    if isinstance(inner, DiskStore):
        return FileLocks(inner.directory / "locks", options)
    if callable(getattr(inner, "full_key", None)) and hasattr(inner, "client"):
        return RedisLocks(inner, options)
    return None  # memory store: one process; a user's own Store: unknown sharing


_keepers: weakref.WeakSet[_Keeper] = weakref.WeakSet()
_live: weakref.WeakSet[Locks] = weakref.WeakSet()


def _after_fork() -> None:
    for keeper in list(_keepers):
        keeper._after_fork()
    for locks in list(_live):
        locks.mine = set()
    for file in list(_files.values()):
        file.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

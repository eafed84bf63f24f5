"""Write-behind for response entries: a miss hands its entry to a writer thread and returns.

:class:`WriteBehind` takes the encoded entry, keeps the entry itself in an in-memory *pending*
map (so a lookup in this process sees it at once) and lets one daemon thread write it: every
``_DELAY`` (20 ms) the writer stores whatever is queued, in one batch (one SQLite transaction
for the disk store), so other processes sharing the store see an entry a few tens of
milliseconds later. :meth:`WriteBehind.flush` (``SafeStore.flush``/``close``, and interpreter
exit) waits until everything queued is written. A failed write is kept and reported on the
caller's thread by the next store call (a ``StoreWarning``, like a synchronous failure), never
raised or warned inside the writer. When the queue is full, :meth:`WriteBehind.submit`
refuses and the caller writes synchronously.

Why batches on a timer rather than one write per miss as soon as possible: measured on misses
against a loopback server, a writer woken for every entry competed with the caller for the GIL
and emptied the caller's SQLite page cache every time, costing more than the write it saved;
one batch per ``_DELAY`` pays those costs once for many entries.

Fork: a forked child gets a fresh lock and no writer thread; entries the parent had queued are
queued again in the child, whose first submit or flush starts its own writer.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from promptcache._store._base import Store
    from promptcache._store._entry import Entry

__all__ = ["WriteBehind"]

_MAX_PENDING: Final = 1024
_MAX_BYTES: Final = 64 * 2**20
_EXIT_FLUSH: Final = 10.0
_MAX_ERRORS: Final = 16
_IDLE: Final = 2.0
# How long the writer lets entries gather before writing them in one batch: about how late
# other processes see an entry.
_DELAY: Final = 0.02


class _Item:
    __slots__ = ("data", "entry", "expires", "key", "queued", "ttl")

    def __init__(self, key: str, entry: Entry, data: bytes, ttl: float | None) -> None:
        self.key = key
        self.entry = entry
        self.data = data
        self.ttl = ttl
        self.expires = None if ttl is None else time.time() + ttl
        self.queued = time.monotonic()


class WriteBehind:
    """Queue store writes for one background writer; serve queued entries from memory."""

    def __init__(
        self, inner: Store, *, max_pending: int = _MAX_PENDING, max_bytes: int = _MAX_BYTES
    ) -> None:
        self.inner = inner
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.errors: list[BaseException] = []
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Item] = deque()
        self._pending: dict[str, _Item] = {}
        self._bytes = 0
        self._busy = 0  # queued or being written
        self._thread: threading.Thread | None = None
        self._closed = False
        self._urgent = 0  # callers in flush(): write without waiting
        self._idle_since: float | None = None

    def _after_fork(self) -> None:
        # In a forked child the writer thread is gone and its lock may be held. What the parent
        # had queued or was writing is queued again: the parent writes it too, and writing the
        # same bytes under the same key twice is harmless, while dropping it would make this
        # process miss answers it had a moment ago (and a flush here would not wait for them).
        items = list(self._pending.values())
        closed = self._closed
        self._reset()
        self._closed = closed
        self.errors = []  # the parent reports its own failures
        for item in items:
            self._queue.append(item)
            self._pending[item.key] = item
            self._bytes += len(item.data)
            self._busy += 1

    def get(self, key: str) -> Entry | None:
        """Return the entry queued for ``key`` and not yet written (``None`` if there is none)."""
        # A plain dict read: atomic under the GIL, and the common case (nothing pending for this
        # key) must cost next to nothing on the hit path.
        item = self._pending.get(key)
        if item is None or (item.expires is not None and item.expires <= time.time()):
            return None
        return item.entry

    def submit(self, key: str, entry: Entry, data: bytes, ttl: float | None) -> bool:
        """Queue a write; ``False`` when full or closed (the caller then writes itself)."""
        item = _Item(key, entry, data, ttl)
        with self._cond:
            if (
                self._closed
                or self._busy >= self.max_pending
                or self._bytes + len(data) > self.max_bytes
            ):
                return False
            self._queue.append(item)
            self._pending[key] = item
            self._bytes += len(data)
            self._busy += 1
            self._start()
        return True

    def _start(self) -> None:
        """Start the writer thread if there is none (the caller holds ``_cond``)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="promptcache-writer", daemon=True
            )
            self._thread.start()

    def forget(self, key: str | None = None) -> None:
        """Drop pending entries (one key, or all) so lookups stop seeing them."""
        with self._cond:
            if key is None:
                self._pending.clear()
            else:
                self._pending.pop(key, None)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued write is done; ``False`` if ``timeout`` ran out first."""
        with self._cond:
            if self._busy:
                self._start()  # a forked child has the parent's entries queued and no writer yet
            self._urgent += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._busy == 0, timeout)
            finally:
                self._urgent -= 1

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the writer thread; later submits are refused."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        _live.discard(self)

    def take_errors(self) -> list[BaseException]:
        """Return and forget the write failures seen since the last call."""
        with self._cond:
            errors, self.errors = self.errors, []
        return errors

    def _next(self) -> _Item | None:
        """Wait for an item that is due (flushed, closing or old enough); ``None``: end."""
        cond = self._cond
        with cond:
            while True:
                queue = self._queue
                if queue:
                    self._idle_since = None
                if queue and (self._urgent or self._closed):
                    return queue.popleft()
                if queue:
                    remaining = queue[0].queued + _DELAY - time.monotonic()
                    if remaining <= 0:
                        return queue.popleft()
                    cond.wait(remaining)
                elif self._closed or self._idle_too_long():
                    # Idle or closed: end (the next submit starts a new writer), so an
                    # unclosed store leaves no thread behind to keep it alive.
                    self._thread = None
                    return None
                else:
                    # Poll rather than be woken by every submit: a wake-up costs the submitting
                    # thread a GIL hand-over, a poll every _DELAY costs nobody anything.
                    cond.wait(_DELAY)

    def _idle_too_long(self) -> bool:
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= _IDLE

    def _run(self) -> None:
        cond = self._cond
        try:
            while True:
                item = self._next()
                if item is None:
                    return
                with cond:  # everything due goes in one batch (one transaction where possible)
                    batch = [item, *self._queue]
                    self._queue.clear()
                error: BaseException | None = None
                try:
                    set_many = getattr(self.inner, "set_many", None)
                    if set_many is not None:
                        set_many([(i.key, i.data, i.ttl) for i in batch])
                    else:
                        for i in batch:
                            self.inner.set(i.key, i.data, ttl=i.ttl)
                except Exception as exc:
                    error = exc
                with cond:
                    for i in batch:
                        if self._pending.get(i.key) is i:
                            del self._pending[i.key]
                        self._bytes -= len(i.data)
                    self._busy -= len(batch)
                    if error is not None and len(self.errors) < _MAX_ERRORS:
                        self.errors.append(error)
                    if self._busy == 0:
                        cond.notify_all()
        finally:
            # A thread-local connection (diskcache's SQLite) belongs to this thread: close it.
            release = getattr(self.inner, "release_thread", None)
            if callable(release):
                try:
                    release()
                except Exception as exc:  # reported like any other write failure
                    with cond:
                        self.errors.append(exc)


_live: weakref.WeakSet[WriteBehind] = weakref.WeakSet()


def _flush_all() -> None:
    # Entries queued when the interpreter exits still reach the store (daemon threads keep
    # running while atexit handlers do).
    for writer in list(_live):
        writer.flush(_EXIT_FLUSH)


def _after_fork() -> None:
    for writer in list(_live):
        writer._after_fork()


atexit.register(_flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

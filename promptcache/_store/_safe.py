"""``SafeStore``: a store whose failures become warnings and misses (or errors, when strict)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import TYPE_CHECKING

from promptcache._errors import StoreError, StoreWarning
from promptcache._store._base import Store, StoreStats
from promptcache._store._breaker import StoreDown, describe
from promptcache._store._crypto import MAGIC as ENCRYPTED
from promptcache._store._disk import StoreRebuilt
from promptcache._store._entry import CorruptEntryError, Entry, decode_entry, encode_entry
from promptcache._store._writebehind import WriteBehind

if TYPE_CHECKING:
    from promptcache._keys import CacheKey

__all__ = ["SafeStore"]

log = logging.getLogger("promptcache")


class SafeStore:
    """Wrap a :class:`Store` so that a broken store never breaks the caller.

    Any exception from the inner store (a full disk, a permission error, a corrupt database, a
    Redis that is down) emits a :class:`~promptcache.StoreWarning` and the operation behaves as
    a miss or a no-op. With ``strict=True`` it raises :class:`~promptcache.StoreError` from the
    original exception instead.

    Response entries (:meth:`put_entry`) are written behind by a background thread when the
    backend asks for it (a ``write_behind = True`` attribute: the disk and Redis stores) or
    ``write_behind=True`` is passed, unless ``strict`` is on (a failed write must then raise at
    the call that wrote). Queued entries are served from memory to this process at once and
    reach the store a moment later (:meth:`flush` waits for them); a failed write is
    reported, as a warning, by the next call on this object.
    """

    def __init__(
        self, inner: Store, *, strict: bool = False, write_behind: bool | None = None
    ) -> None:
        self.inner = inner
        self.strict = strict
        if write_behind is None:
            write_behind = getattr(inner, "write_behind", False) is True
        # Strict means a failed write raises at the call that wrote: always synchronous then.
        write_behind = write_behind and not strict
        self.writer: WriteBehind | None = WriteBehind(inner) if write_behind else None
        self._decrypts = getattr(inner, "encrypted", False) is True
        self._warned_encrypted = False

    @property
    def blocking(self) -> bool:
        """Whether calls do I/O (async callers then run them in a worker thread)."""
        return bool(getattr(self.inner, "blocking", True))

    @property
    def writes_behind(self) -> bool:
        """Whether :meth:`put_entry` usually returns without doing I/O."""
        return self.writer is not None

    def _report(self) -> None:
        """Turn writes that failed in the background into warnings (or raise when strict)."""
        if self.writer is not None and self.writer.errors:
            for exc in self.writer.take_errors():
                self._fail("write", exc)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every entry queued for writing is in the store (and report failures)."""
        if self.writer is not None:
            self.writer.flush(timeout)
            self._report()

    def _fail(self, action: str, exc: BaseException) -> None:
        if isinstance(exc, StoreDown) and not self.strict:
            if exc.warn:
                warnings.warn(str(exc), StoreWarning, stacklevel=3)
            else:
                log.debug("promptcache: cache store failed to %s: %s", action, exc)
            return
        if self.strict:
            if isinstance(exc, StoreError):
                raise exc
            raise StoreError(f"cache store failed to {action}: {exc!r}") from exc
        if isinstance(exc, StoreRebuilt):
            message = str(exc)  # healed: says what happened, and the store works again
        else:
            message = (
                f"promptcache: cache store failed to {action} ({exc!r}); continuing without it"
            )
        warnings.warn(message, StoreWarning, stacklevel=3)

    def get(self, key: str) -> bytes | None:
        """Return the stored bytes, or ``None`` on a miss or a store failure."""
        try:
            data = self.inner.get(key)
        except Exception as exc:
            self._fail("read", exc)
            return None
        if data is not None and not self._decrypts and data[: len(ENCRYPTED)] == ENCRYPTED:
            # Another machine encrypts and this one has no key: a miss, and never deleted as
            # corrupt (it is not; this process cannot read it).
            if not self._warned_encrypted:
                self._warned_encrypted = True
                warnings.warn(
                    "promptcache: the cache store holds encrypted entries and this process has "
                    "no PROMPTCACHE_ENCRYPTION_KEY; treating them as misses",
                    StoreWarning,
                    stacklevel=3,
                )
            return None
        return data

    @property
    def shares_keys(self) -> bool:
        """Whether the store is shared by machines and keeps their common key secret."""
        return callable(getattr(self.inner, "key_secret", None))

    def key_secret(self) -> bytes | None:
        """Return the store's shared key secret, or ``None`` (with a warning) if unavailable."""
        fn = getattr(self.inner, "key_secret", None)
        if fn is None:
            return None
        try:
            return bytes(fn())
        except Exception as exc:
            if self.strict:
                raise StoreError(f"could not read the shared key secret: {exc!r}") from exc
            cause = exc.__cause__ if isinstance(exc, StoreDown) and exc.__cause__ else exc
            warnings.warn(
                f"promptcache: could not read the shared key secret from the cache store "
                f"({describe(cause)}); this process keys its entries with its own directory's "
                "salt, so other machines will not share them. Set PROMPTCACHE_SECRET on every "
                "machine so that a fleet never depends on the store for it",
                StoreWarning,
                stacklevel=3,
            )
            return None

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store bytes; a failure is a warning (or :class:`StoreError` when strict)."""
        try:
            self.inner.set(key, value, ttl=ttl)
        except Exception as exc:
            self._fail("write", exc)

    def delete(self, key: str) -> None:
        """Remove ``key``; a failure is a warning (or :class:`StoreError` when strict)."""
        self.flush()  # a queued write must not bring the entry back afterwards
        try:
            self.inner.delete(key)
        except Exception as exc:
            self._fail("delete", exc)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; ``0`` if the backend cannot or failed."""
        self.flush()
        try:
            fn = getattr(self.inner, "delete_prefix", None)
            if fn is None:
                raise NotImplementedError(f"{type(self.inner).__name__} has no delete_prefix")
            return int(fn(prefix))
        except Exception as exc:
            self._fail("delete", exc)
            return 0

    def clear(self) -> int:
        """Remove every entry; ``0`` on failure."""
        self.flush()
        try:
            return self.inner.clear()
        except Exception as exc:
            self._fail("clear", exc)
            return 0

    def stats(self) -> StoreStats:
        """Return the inner store's stats (zeros on failure)."""
        self.flush()
        try:
            return self.inner.stats()
        except Exception as exc:
            self._fail("report stats", exc)
            return StoreStats(0, 0, 0, 0, repr(self.inner), "unavailable")

    def close(self) -> None:
        """Write what is queued, then close the inner store; a failure is a warning."""
        if self.writer is not None:
            self.writer.close()
            self._report()
        try:
            self.inner.close()
        except Exception as exc:
            self._fail("close", exc)

    def discard(self, key: str, error: BaseException) -> None:
        """Drop an entry found unusable (``error`` says why): warn, or raise when strict."""
        # If deleting fails too, the warning below already reports the store as broken.
        if self.writer is not None:
            self.writer.forget(key)
            self.writer.flush()
        with contextlib.suppress(Exception):
            self.inner.delete(key)
        self._fail(f"read a usable entry for {key!r}", error)

    # --- response entries: the hit path of the transport ------------------------------------

    def get_entry(self, key: CacheKey) -> Entry | None:
        """Return the entry for ``key`` if present, intact and for this very request.

        A corrupt entry is deleted and reported (warning, or :class:`StoreError` when strict);
        an entry whose verify digest differs (a hash collision) is a silent miss.
        """
        writer = self.writer
        if writer is not None:
            if writer.errors:
                self._report()
            pending = writer.get(key.key)
            if pending is not None:
                return pending if pending.verify == key.verify else None
        data = self.get(key.key)
        if data is None:
            return None
        try:
            entry = decode_entry(data)
        except CorruptEntryError as exc:
            self.discard(key.key, exc)
            return None
        if entry.verify != key.verify:
            return None
        return entry

    def put_entry(self, key: CacheKey, entry: Entry, *, ttl: float | None) -> None:
        """Encode and store an entry (its ``verify`` must be ``key.verify``)."""
        if entry.verify != key.verify:
            raise ValueError("entry.verify must equal key.verify")
        data = encode_entry(entry)  # here, so an entry that cannot be encoded raises here
        writer = self.writer
        if writer is not None:
            if writer.errors:
                self._report()
            if writer.submit(key.key, entry, data, ttl):
                return
        self.set(key.key, data, ttl=ttl)

    def __repr__(self) -> str:
        return f"SafeStore({self.inner!r}, strict={self.strict})"

"""The store protocol every backend implements, and its statistics record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Store", "StoreStats"]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A snapshot of a store.

    ``entries`` and ``size_bytes`` describe the whole shared store; ``hits`` and ``misses``
    count this process's lookups through this object. ``location`` is a directory or a URL
    (without password); ``backend`` is ``"disk"``, ``"memory"`` or ``"redis"``.
    """

    entries: int
    size_bytes: int
    hits: int
    misses: int
    location: str
    backend: str


@runtime_checkable
class Store(Protocol):
    """Bytes in, bytes out. Implementations may raise on failure; :class:`SafeStore` does not.

    A store may also have a ``blocking`` attribute: ``False`` tells async callers that its
    calls do no I/O and may run on the event loop (absent means ``True``: use a worker thread),
    and a ``delete_prefix(prefix) -> int`` method, used by ``cache_clear`` and the CLI.
    """

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None`` if absent or expired."""
        ...

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``None`` or ``inf``: no expiry)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        ...

    def stats(self) -> StoreStats:
        """Return a snapshot of the store."""
        ...

    def close(self) -> None:
        """Release files and connections; the object must not be used afterwards."""
        ...

"""The fleet backend: one Redis (or Valkey) server shared by every machine, with native TTLs."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from promptcache._errors import MissingDependencyError
from promptcache._store._base import StoreStats

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore"]

#: Every key promptcache writes starts with this, so ``clear`` never touches anyone else's data.
KEY_PREFIX: Final = "promptcache:"
# A store call that waits longer than this is a failure (a miss with a warning), not a stall.
_TIMEOUT: Final = 2.0
_GLOB = re.compile(r"([*?\[\]\\])")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStore:
    """A :class:`~promptcache._store.Store` on a Redis server, for fleets of machines.

    Entries expire with Redis' own TTLs; the size bound is Redis' ``maxmemory`` with an
    eviction policy such as ``allkeys-lru`` (promptcache does not enforce one here). Keys are
    prefixed with ``"promptcache:"``. Values are raw bytes, as in every store.
    """

    blocking = True
    #: Written behind by default: a write is a network round trip, during which a writer thread
    #: holds no GIL (redis-py clients are thread-safe, with a connection pool).
    write_behind = True

    def __init__(self, client: redis.Redis[bytes], *, location: str = "redis://") -> None:
        self._client = client
        self.location = location
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        """Connect lazily to ``redis://[:password@]host:port/db`` (also ``rediss://``, ``unix://``).

        Socket timeouts default to 2 s so that a Redis that is down or slow becomes a miss
        quickly. Raises :class:`~promptcache.MissingDependencyError` without redis-py.
        """
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is installed in the test env
            raise MissingDependencyError(
                "the Redis store needs redis-py: pip install 'promptcache[redis]'"
            ) from exc
        options.setdefault("socket_timeout", _TIMEOUT)
        options.setdefault("socket_connect_timeout", _TIMEOUT)
        client = redis.Redis.from_url(url, **options)
        return cls(client, location=_redacted(url))

    def get(self, key: str) -> bytes | None:
        """Return the bytes under ``key``, or ``None``."""
        value = self._client.get(KEY_PREFIX + key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return bytes(value)

    def set(self, key: str, value: bytes, *, ttl: float | None) -> None:
        """Store bytes under ``key`` for ``ttl`` seconds (``None`` or ``inf``: no expiry)."""
        if type(value) is not bytes:
            raise TypeError(f"RedisStore stores bytes only, not {type(value).__name__}")
        if ttl is None or ttl == math.inf:
            self._client.set(KEY_PREFIX + key, value)
        elif ttl <= 0:
            self._client.delete(KEY_PREFIX + key)
        else:
            self._client.set(KEY_PREFIX + key, value, px=max(1, round(ttl * 1000)))

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._client.delete(KEY_PREFIX + key)

    def _delete_matching(self, pattern: str) -> int:
        removed = 0
        batch: list[bytes] = []
        for k in self._client.scan_iter(match=pattern, count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                removed += int(self._client.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(self._client.unlink(*batch))
        return removed

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix``; return how many were removed."""
        return self._delete_matching(_GLOB.sub(r"\\\1", KEY_PREFIX + prefix) + "*")

    def clear(self) -> int:
        """Remove every promptcache entry (other keys in the database are left alone)."""
        return self._delete_matching(_GLOB.sub(r"\\\1", KEY_PREFIX) + "*")

    def stats(self) -> StoreStats:
        """Count promptcache's entries and their value bytes (a SCAN: meant for the CLI)."""
        entries = size = 0
        pattern = _GLOB.sub(r"\\\1", KEY_PREFIX) + "*"
        keys = list(self._client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            pipe = self._client.pipeline(transaction=False)
            for k in keys[start : start + 1000]:
                pipe.strlen(k)
            lengths = pipe.execute()
            entries += sum(1 for n in lengths if n)
            size += sum(int(n) for n in lengths)
        return StoreStats(entries, size, self.hits, self.misses, self.location, "redis")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r})"

"""The emulator's prompt-cache store: prefix digests with lifetimes on the injected clock."""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

__all__ = ["TTL_SECONDS", "Entry", "Fingerprint", "PrefixStore"]

# Lifetime of each TTL label, in seconds. "in_memory" is OpenAI's pre-gpt-5.6 retention for
# organisations with Zero Data Retention (documented as 5-10 minutes of inactivity, at most an
# hour; the default here is 10 minutes, a setting: OpenAISettings.in_memory_idle_s).
TTL_SECONDS: dict[str, float] = {
    "5m": 300.0,
    "1h": 3600.0,
    "30m": 1800.0,
    "12h": 43200.0,
    "in_memory": 600.0,
    "24h": 86400.0,
}


@dataclass
class Entry:
    """One cached prefix: its length, when it lapses, and the most it may live."""

    tokens: int
    ttl: str
    expires_at: float
    cap_at: float = math.inf


class PrefixStore:
    """Cached prefixes keyed by (scope, digest); thread-safe.

    The scope isolates what the provider isolates (model, OpenAI ``prompt_cache_key``, and the
    machine that served the request). Entries expire ``lifetimes[ttl]`` (default
    ``TTL_SECONDS[ttl]``) after the start of the last request that wrote or read them, but never
    later than ``caps[ttl]`` after they were first written (OpenAI ``in_memory``: at most an
    hour).
    """

    def __init__(
        self, lifetimes: Mapping[str, float] | None = None, caps: Mapping[str, float] | None = None
    ) -> None:
        self._life = {**TTL_SECONDS, **(lifetimes or {})}
        self._caps = dict(caps or {})
        self._entries: dict[tuple[Hashable, bytes], Entry] = {}
        self._lock = threading.Lock()
        self._writes_since_purge = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def get(self, scope: Hashable, digest: bytes, now: float) -> Entry | None:
        """Return the live entry for this prefix, or ``None`` (expired entries are dropped)."""
        key = (scope, digest)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return entry

    def touch(self, entry: Entry, now: float, ttl: str | None = None) -> None:
        """Refresh an entry's lifetime on a read (free of charge on both providers).

        A read under a longer TTL than the entry has extends it to that TTL.
        """
        life = self._life
        if ttl is not None and life[ttl] > life[entry.ttl]:
            entry.ttl = ttl
            entry.cap_at = max(entry.cap_at, now + self._caps.get(ttl, math.inf))
        entry.expires_at = min(max(entry.expires_at, now + life[entry.ttl]), entry.cap_at)

    def put(self, scope: Hashable, digest: bytes, tokens: int, ttl: str, now: float) -> None:
        """Write (or extend) the entry for this prefix."""
        self.put_many(scope, [(digest, tokens)], ttl, now)

    def put_many(
        self, scope: Hashable, prefixes: list[tuple[bytes, int]], ttl: str, now: float
    ) -> None:
        """Write (or extend) several prefixes under one lock."""
        life = self._life
        expires = now + life[ttl]
        cap = now + self._caps.get(ttl, math.inf)
        entries = self._entries
        with self._lock:
            for digest, tokens in prefixes:
                key = (scope, digest)
                old = entries.get(key)
                if old is not None and old.expires_at > now:
                    if life[ttl] > life[old.ttl]:
                        old.ttl = ttl
                        old.cap_at = max(old.cap_at, cap)
                    old.expires_at = min(max(old.expires_at, expires), old.cap_at)
                    continue
                entries[key] = Entry(tokens, ttl, min(expires, cap), cap)
            self._writes_since_purge += len(prefixes)
            if self._writes_since_purge > 200_000:
                self._writes_since_purge = 0
                dead = [k for k, e in entries.items() if e.expires_at <= now]
                for k in dead:
                    del entries[k]


@dataclass
class Fingerprint:
    """Where a served prompt's prefix stood, level by level, for cache-miss diagnostics.

    ``levels`` maps a level name to (cumulative digest, tokens) at its end; ``items`` holds the
    same at the end of each message/input item; ``prefix_tokens`` is the prompt without the
    reply primer.
    """

    model: str
    key: str = ""
    levels: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    items: list[tuple[bytes, int]] = field(default_factory=list)
    prefix_tokens: int = 0

    def divergence(self, prev: Fingerprint, order: tuple[str, ...]) -> tuple[str | None, int]:
        """First level where this prompt stops extending ``prev``, and the tokens in common.

        Returns ``("model" | "key" | <level> | "items", common_tokens)`` or ``(None, tokens)``
        when this prompt starts with all of ``prev``'s items.
        """
        if self.model != prev.model:
            return "model", 0
        if self.key != prev.key:
            return "key", 0
        common = 0
        for name in order:
            mine, theirs = self.levels.get(name), prev.levels.get(name)
            if mine is None or theirs is None or mine[0] != theirs[0]:
                return name, common
            common = theirs[1]
        for i, (digest, tokens) in enumerate(prev.items):
            if i >= len(self.items) or self.items[i][0] != digest:
                return "items", common
            common = tokens
        return None, common

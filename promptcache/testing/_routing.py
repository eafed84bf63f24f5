"""OpenAI overflow routing: which machine serves a request, and so which cache it can read.

PROVIDERS.md §2.1: OpenAI routes a request by a hash of the prompt's initial prefix (~256
tokens, model-dependent) plus ``prompt_cache_key``, and "traffic above 15 requests per minute
can lead to overflow routing" for one prefix and key. A cache lives on a machine, so a request
that overflows to another machine reads only what that machine holds.

The model (the docs say no more than the above, so the rest is an assumption, stated in
docs/emulator.md): each routing key (model, digest of the first 256 tokens, key) has a *home*
machine that serves at most ``limit`` requests in any 60-second window (sliding, on the
emulator's clock); every request beyond that lands on one of ``overflow_machines`` other
machines, chosen by a hash of the routing key and how many requests of that key overflowed
before. Given the same requests at the same clock times, the same machines serve them.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import xxhash

from promptcache.testing._types import OpenAISettings

__all__ = ["ROUTING_PREFIX_BYTES", "Router"]

# 256 tokens at the emulator's 4 bytes a token.
ROUTING_PREFIX_BYTES: Final = 256 * 4
WINDOW_S: Final = 60.0
_MAX_KEYS: Final = 100_000  # routing keys remembered before idle ones are forgotten


class Router:
    """Assigns each OpenAI request to a machine; not thread-safe (the engine lock guards it)."""

    def __init__(self, settings: OpenAISettings) -> None:
        self.settings = settings
        self._home: dict[tuple[str, str, bytes], deque[float]] = {}
        self._overflowed: dict[tuple[str, str, bytes], int] = {}

    def clear(self) -> None:
        """Forget every rate window (a reset emulator starts cold)."""
        self._home.clear()
        self._overflowed.clear()

    def machine(self, model: str, key: str, head: bytes, now: float) -> int:
        """Return 0 for the routing key's home machine, or the overflow machine (1 and up)."""
        limit = self.settings.routing_limit_per_minute
        if limit is None:
            return 0
        rk = (model, key, head)
        window = self._home.get(rk)
        if window is None:
            if len(self._home) >= _MAX_KEYS:
                self._forget_idle(now)
            window = self._home[rk] = deque()
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        if len(window) < limit:
            window.append(now)
            return 0
        n = self._overflowed.get(rk, 0)
        self._overflowed[rk] = n + 1
        h = xxhash.xxh3_64_intdigest(
            b"%b\x00%b\x00%b\x00%d" % (model.encode(), key.encode(), head, n)
        )
        return 1 + h % self.settings.overflow_machines

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, w in self._home.items() if not w or w[-1] <= now - WINDOW_S]
        for k in idle:
            del self._home[k]
            self._overflowed.pop(k, None)

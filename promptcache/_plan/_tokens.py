"""Token estimation for planning, without network and without per-token loops.

Planning only needs to know whether a prefix clears a provider minimum (512-4096 tokens) and
roughly how large each block is. Counting real tokens would cost more than the whole miss
budget on a 200k-token request (tiktoken needs ~20 ms there, and cannot load a vocabulary
offline here), so sizes come from character counts of each block's JSON divided by a
chars-per-token ratio. The ratio starts at a deliberately high value (so estimates err low and
breakpoints are not placed below a minimum) and is recalibrated per model from the inclusive
``input_tokens`` the provider reports.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Final

__all__ = ["Calibration"]

# English prose with JSON framing runs at ~3.6-4.2 chars/token on current vocabularies;
# starting high under-estimates token counts, which keeps minimum checks conservative.
DEFAULT_CHARS_PER_TOKEN: Final = 4.2
_MIN_RATIO: Final = 1.0
_MAX_RATIO: Final = 12.0
_ALPHA: Final = 0.5


class Calibration:
    """Per-model chars-per-token ratios, learnt from provider usage. Thread-safe."""

    def __init__(self) -> None:
        self._ratios: dict[str, float] = {}
        self._lock = threading.Lock()
        _live.add(self)

    def ratio(self, model: str | None) -> tuple[float, bool]:
        """Return ``(chars_per_token, calibrated)`` for ``model``."""
        r = self._ratios.get(model or "")
        if r is None:
            return DEFAULT_CHARS_PER_TOKEN, False
        return r, True

    def update(self, model: str | None, chars: int, tokens: int) -> None:
        """Blend in one observation: ``chars`` of request JSON billed as ``tokens``."""
        if chars <= 0 or tokens <= 0:
            return
        observed = min(_MAX_RATIO, max(_MIN_RATIO, chars / tokens))
        key = model or ""
        with self._lock:
            old = self._ratios.get(key)
            self._ratios[key] = observed if old is None else old + _ALPHA * (observed - old)
        # Bounded: a model name is small and there are few models in one process.
        if len(self._ratios) > 1024:  # pragma: no cover - defensive
            with self._lock:
                self._ratios.clear()


_live: weakref.WeakSet[Calibration] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child: a parent thread may have held a lock, and no thread will release it here.
    # The ratios are estimates: kept as they were.
    for obj in list(_live):
        obj._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

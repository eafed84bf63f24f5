"""Ground truth the emulator does not report by itself: which billed cache writes were read.

``ServedCall`` says how many tokens each call read and wrote, not *whose* write a read used.
:class:`WriteLedger` watches the emulator's prefix store while it serves (sequential calls
only) and attributes every cache hit to the call that wrote that entry, so that for each call
``never_read = written - (deepest later-read boundary it wrote - its own hit)`` - the tokens
paid for at the write price and never read by anyone.

It reaches into two private attributes of ``promptcache.testing.Emulator`` (``_store`` and
``_serve``); if a future emulator changes them, :meth:`WriteLedger.attach` returns ``None`` and
the benchmark prints ``n/a`` instead of a wrong figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CallWrites", "WriteLedger"]


@dataclass
class CallWrites:
    """One served call: tokens read and written, and how much of the write was read later."""

    read: int
    written: int
    by_ttl: dict[str, int]
    read_upto: int = 0  # deepest boundary this call wrote that a later call read

    @property
    def never_read(self) -> int:
        """Written tokens no later call read."""
        used = max(0, min(self.read_upto, self.read + self.written) - self.read)
        return self.written - used


class WriteLedger:
    """Attributes cache hits to the writes that made them (see the module docstring)."""

    def __init__(self, emu: Any) -> None:
        self.calls: list[CallWrites] = []
        self._store = emu._store
        self._gets: list[Any] = []
        self._puts: list[tuple[Any, bytes, int]] = []
        self._writer: dict[int, tuple[Any, int]] = {}  # id(entry) -> (entry, call index)
        orig_get, orig_put_many, orig_serve = self._store.get, self._store.put_many, emu._serve

        def get(scope: Any, digest: bytes, now: float) -> Any:
            entry = orig_get(scope, digest, now)
            if entry is not None:
                self._gets.append(entry)
            return entry

        def put_many(scope: Any, prefixes: list[tuple[bytes, int]], ttl: str, now: float) -> None:
            orig_put_many(scope, prefixes, ttl, now)
            self._puts += [(scope, d, t) for d, t in prefixes]

        def serve(api: str, body: Any, now: float) -> Any:
            self._gets, self._puts = [], []
            out = orig_serve(api, body, now)
            self._settle(out.billing)
            return out

        self._store.get = get
        self._store.put_many = put_many
        emu._serve = serve

    @classmethod
    def attach(cls, emu: Any) -> WriteLedger | None:
        """Watch ``emu``, or ``None`` when its internals are not the ones this knows."""
        store = getattr(emu, "_store", None)
        if store is None or not callable(getattr(emu, "_serve", None)):
            return None
        if not all(callable(getattr(store, n, None)) for n in ("get", "put_many")):
            return None
        return cls(emu)

    def _settle(self, billing: Any) -> None:
        idx = len(self.calls)
        call = CallWrites(
            read=billing.cache_read_tokens,
            written=billing.cache_write_tokens,
            by_ttl=dict(billing.cache_write_by_ttl),
        )
        for entry in self._gets:
            owner = self._writer.get(id(entry))
            if owner is not None and owner[0] is entry and owner[1] != idx:
                earlier = self.calls[owner[1]]
                earlier.read_upto = max(earlier.read_upto, entry.tokens)
        if call.written:
            entries = self._store._entries
            for scope, digest, tokens in self._puts:
                if tokens > call.read:
                    entry = entries.get((scope, digest))
                    if entry is not None:
                        self._writer[id(entry)] = (entry, idx)
        self.calls.append(call)

    @property
    def never_read(self) -> int:
        """Tokens written (and billed) that no later call read."""
        return sum(c.never_read for c in self.calls)

"""Spreading a hot prompt family over derived ``prompt_cache_key``s (OpenAI overflow routing).

PROVIDERS.md §2.1: OpenAI routes a request by a hash of the prompt's first ~256 tokens plus
``prompt_cache_key``, and "traffic above 15 requests per minute can lead to overflow routing"
for one prefix and key: the overflow lands on machines that do not hold the prefix, so it
reads nothing (and on gpt-5.6+ pays the write again). A family sent faster than that is
therefore spread over as many keys as its rate needs, each kept below the limit.

How the shards stay warm, with as few cold ones as possible:

* the rate is counted over a sliding minute on the planner's clock, and sharding starts only
  above the limit; the number of shards is sized for ``HEADROOM`` of the limit each, so the
  jitter of real traffic does not tip a shard over (every extra shard costs one cold write),
  and shrinks only when the rate has clearly fallen, so it does not flap;
* shard 0 is the key itself, so the prefix already cached under it stays in use;
* a request that starts something new (a single question, a conversation's first turn) goes
  to the shard with the fewest requests in the last minute (ties: the one used longest ago):
  traffic spreads evenly and a newly opened shard fills first;
* a later turn of a conversation stays on the shard its earlier turns went to, which holds
  its longer prefix. Conversations are placed by a consistent hash of their id, probing on to
  the next shard while one already holds more than its share of the conversations active in
  the last minute (consistent hashing with bounded loads): balanced, and stable when the number
  of shards changes. Counting conversations, not past requests, keeps the balance free of the
  minute's lag, so conversations do not move in herds. A turn whose shard is full this minute
  goes to the least loaded one, once, without moving the conversation.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "HEADROOM",
    "SHARD_NOTE",
    "WINDOW_S",
    "Route",
    "jump_hash",
    "shard_key",
    "shards_needed",
]

WINDOW_S: Final = 60.0
HEADROOM: Final = 0.8
MAX_SHARDS: Final = 64
MAX_CONVERSATIONS: Final = 1024
_MAX_TIMES: Final = 4096  # per shard; a rate beyond this is "very high" either way
#: How a ``Rewrite.notes`` entry starts when the request went under a derived shard key (the
#: doctor reads it: a shard's first request is cold by design, and its key is the family's).
SHARD_NOTE: Final = "prompt_cache_key shard "


def shards_needed(rate: int, limit: float, current: int) -> int:
    """Shards for ``rate`` requests in the last minute: 1 up to the limit, then with headroom.

    Once sharded, the count shrinks only when the rate would fit fewer shards even at
    ``HEADROOM`` squared, so a rate hovering near a boundary does not flip the count (each flip
    moves conversations to a shard that does not hold them).
    """
    target = limit * HEADROOM
    if rate <= limit and (current <= 1 or rate <= target * HEADROOM):
        return 1
    need = max(2, min(MAX_SHARDS, math.ceil(rate / target)))
    if need < current:
        need = max(need, min(current, math.ceil(rate / (target * HEADROOM))))
    return need


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash of a 64-bit ``key`` into ``buckets``."""
    b, j = -1, 0
    key &= 0xFFFFFFFFFFFFFFFF
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_key(key: str, shard: int) -> str:
    """Return the key of ``shard``: ``key`` itself for 0, else ``<key>-s<shard>``."""
    return key if shard == 0 else f"{key}-s{shard}"


@dataclass(slots=True)
class Route:
    """One family and key: request times per shard over the last minute, conversations."""

    loads: list[deque[float]] = field(default_factory=lambda: [deque(maxlen=_MAX_TIMES)])
    last: list[float] = field(default_factory=lambda: [-math.inf])
    shards: int = 1
    pins: OrderedDict[int, int] = field(default_factory=OrderedDict)  # conversation -> shard
    active: OrderedDict[int, float] = field(default_factory=OrderedDict)  # id -> last seen
    members: list[int] = field(default_factory=lambda: [0])  # active conversations per shard

    def size(self, now: float, limit: float) -> int:
        """Forget requests older than a minute and return the shard count for the next one."""
        cutoff = now - WINDOW_S
        rate = 1  # the request being placed
        for window in self.loads:
            while window and window[0] <= cutoff:
                window.popleft()
            rate += len(window)
        active = self.active
        while active:
            cid, seen = next(iter(active.items()))
            if seen > cutoff:
                break
            del active[cid]
            self.members[self.pins.get(cid, 0)] -= 1
        self.shards = n = shards_needed(rate, limit, self.shards)
        while len(self.loads) < n:
            self.loads.append(deque(maxlen=_MAX_TIMES))
            self.last.append(-math.inf)
            self.members.append(0)
        return n

    def assign(self, now: float, limit: float, conversation: tuple[int, bool] | None) -> int:
        """Pick the shard for a request at ``now`` (after :meth:`size`) and count it there.

        ``conversation`` is ``(id, continues)``: the id of the conversation the request belongs
        to, and whether it continues earlier turns (only then does it decide the shard).
        """
        n = self.shards
        shard = -1
        if n > 1 and conversation is not None and conversation[1]:
            shard = self._place(conversation[0], now, n)
            if len(self.loads[shard]) >= limit:
                shard = -1  # full this minute: this turn would overflow there anyway
        if n == 1:
            shard = 0
        elif shard < 0:
            shard = min(range(n), key=lambda s: (len(self.loads[s]), self.last[s], s))
        self.loads[shard].append(now)
        self.last[shard] = now
        return shard

    def _place(self, cid: int, now: float, n: int) -> int:
        pins, members = self.pins, self.members
        was_active = cid in self.active
        old = pins.get(cid)
        total = sum(members[:n]) + (0 if was_active else 1)
        cap = -(-total // n)  # each shard's share of the active conversations, rounded up
        if old is not None and old < n and members[old] + (0 if was_active else 1) <= cap:
            shard = old
        else:
            start = jump_hash(cid, n)
            shard = next(
                (s for s in ((start + i) % n for i in range(n)) if members[s] < cap), start
            )
        if was_active and old is not None:
            members[old] -= 1
        members[shard] += 1
        self.active[cid] = now
        self.active.move_to_end(cid)
        pins[cid] = shard
        pins.move_to_end(cid)
        if len(pins) > MAX_CONVERSATIONS:
            gone, where = pins.popitem(last=False)
            if self.active.pop(gone, None) is not None:
                members[where] -= 1
        return shard
